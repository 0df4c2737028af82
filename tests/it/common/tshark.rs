//! Wireshark's Kafka dissector as an oracle: runs `tshark -T json -x` on a capture, extracts each
//! Kafka PDU's bytes and the fields tshark decoded (with their byte offsets), and compares them
//! with our dissector's view of the same bytes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;

use chronik_tui::protocol::{dissect_request, dissect_response, Dissection, Field, Value};

/// One Kafka PDU as tshark saw it.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub frame_no: u64,
    /// TCP stream index, to pair requests and responses.
    pub stream: u64,
    /// The PDU's bytes (size prefix included).
    pub bytes: Vec<u8>,
    pub is_request: bool,
    /// tshark reported a malformed packet.
    pub malformed: bool,
    /// tshark does not support this PDU's API version (tshark 4.0 stops at older versions).
    pub unsupported_version: bool,
    /// Every field tshark decoded: (tshark name, offset inside the PDU, length, shown value).
    pub fields: Vec<(String, usize, usize, String)>,
}

/// Bytes from tshark's hex (`kafka_raw` and the like).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// What tshark said of a PDU besides its fields.
#[derive(Default)]
struct Verdict {
    malformed: bool,
    unsupported_version: bool,
}

fn collect(
    v: &Json,
    base: usize,
    out: &mut Vec<(String, usize, usize, String)>,
    verdict: &mut Verdict,
) {
    let Json::Object(m) = v else { return };
    for (k, val) in m {
        if k == "_ws.malformed" {
            verdict.malformed = true;
        }
        // The PDU's own version is one tshark cannot decode (ApiVersions responses also carry
        // such notes on the versions they list, which are no failure).
        if (k == "kafka.request.version_tree" || k == "kafka.response.version_tree")
            && val.to_string().contains("unsupported_api_version")
        {
            verdict.unsupported_version = true;
        }
        if k == "_ws.expert" {
            if val.to_string().contains("Malformed") {
                verdict.malformed = true;
            }
            continue;
        }
        if let Some(name) = k.strip_suffix("_raw") {
            // [hex, pos, len, bitmask, type], or a list of such for duplicate keys.
            let raws: Vec<&Json> = match val {
                Json::Array(a) if a.first().is_some_and(Json::is_array) => a.iter().collect(),
                _ => vec![val],
            };
            let shown: Vec<String> = match m.get(name) {
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect(),
                Some(Json::String(s)) => vec![s.clone()],
                _ => vec![],
            };
            for (i, r) in raws.iter().enumerate() {
                let (Some(pos), Some(len)) = (r[1].as_u64(), r[2].as_u64()) else {
                    continue;
                };
                if (pos as usize) < base {
                    continue;
                }
                let value = shown.get(i).cloned().unwrap_or_default();
                out.push((name.to_string(), pos as usize - base, len as usize, value));
            }
            continue;
        }
        match val {
            Json::Object(_) => collect(val, base, out, verdict),
            Json::Array(a) => {
                for x in a {
                    collect(x, base, out, verdict);
                }
            }
            _ => {}
        }
    }
}

/// tshark's `-T json -x --no-duplicate-keys` view of a capture, decoding `port` as Kafka, with
/// `extra` arguments (preferences, a display filter).
pub fn json(capture: &Path, port: u16, extra: &[&str]) -> Json {
    let out = stdout(
        Command::new("tshark")
            .arg("-r")
            .arg(capture)
            .args(["-d", &format!("tcp.port=={port},kafka")])
            .args(extra)
            .args(["-T", "json", "-x", "--no-duplicate-keys"]),
    );
    serde_json::from_slice(&out).expect("tshark JSON")
}

/// What a tshark command printed; the test fails when tshark does.
fn stdout(tshark: &mut Command) -> Vec<u8> {
    let out = tshark
        .output()
        .expect("tshark must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs tshark on a capture, decoding `port` as Kafka.
pub fn pdus(capture: &Path, port: u16) -> Vec<Pdu> {
    let packets = json(capture, port, &["-Y", "kafka"]);
    let mut result = Vec::new();
    for p in packets.as_array().expect("array") {
        let layers = &p["_source"]["layers"];
        let frame_no = layers["frame"]["frame.number"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let stream = layers["tcp"]["tcp.stream"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let raws: Vec<&Json> = match &layers["kafka_raw"] {
            Json::Array(a) if a.first().is_some_and(Json::is_array) => a.iter().collect(),
            other => vec![other],
        };
        let trees: Vec<&Json> = match &layers["kafka"] {
            Json::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for (raw, tree) in raws.iter().zip(trees) {
            let bytes = hex(raw[0].as_str().expect("kafka_raw hex"));
            let base = raw[1].as_u64().expect("pos") as usize;
            let mut fields = Vec::new();
            let mut verdict = Verdict::default();
            collect(tree, base, &mut fields, &mut verdict);
            verdict.malformed |= layers.get("_ws.malformed").is_some();
            let is_request = tree.get("kafka.request_key").is_some();
            result.push(Pdu {
                frame_no,
                stream,
                bytes,
                is_request,
                malformed: verdict.malformed,
                unsupported_version: verdict.unsupported_version,
                fields,
            });
        }
    }
    // tshark flags an unsupported version on responses only, and not at all when it could not
    // read the request. Its ApiVersions decoding says which versions it supports ("Supports
    // v0-N" on each API it knows fewer versions of than the broker): apply that to requests, and
    // carry a request's verdict to its response.
    let mut max: HashMap<i16, i16> = HashMap::new();
    for p in packets.as_array().expect("array") {
        tshark_support(&p["_source"]["layers"]["kafka"], &mut max);
    }
    let mut unsupported: std::collections::HashSet<(u64, Vec<u8>)> = Default::default();
    for p in result
        .iter_mut()
        .filter(|p| p.is_request && p.bytes.len() >= 12)
    {
        let key = i16::from_be_bytes([p.bytes[4], p.bytes[5]]);
        let version = i16::from_be_bytes([p.bytes[6], p.bytes[7]]);
        if max.get(&key).is_some_and(|m| version > *m) {
            p.unsupported_version = true;
        }
        if p.unsupported_version {
            unsupported.insert((p.stream, p.bytes[8..12].to_vec()));
        }
    }
    for p in result
        .iter_mut()
        .filter(|p| !p.is_request && p.bytes.len() >= 8)
    {
        if unsupported.contains(&(p.stream, p.bytes[4..8].to_vec())) {
            p.unsupported_version = true;
        }
    }
    result
}

/// Collects tshark's "Unsupported X version. Supports v0-N." notes from ApiVersions responses.
fn tshark_support(v: &Json, max: &mut HashMap<i16, i16>) {
    match v {
        Json::Object(m) => {
            if let (Some(key), Some(expert)) =
                (m.get("kafka.api_versions.api_key"), m.get("_ws.expert"))
            {
                let msg = expert["_ws.expert.message"].as_str().unwrap_or("");
                if let (Some(k), Some(n)) = (
                    key.as_str().and_then(|k| k.parse::<i16>().ok()),
                    msg.rsplit("v0-")
                        .next()
                        .and_then(|t| t.trim_end_matches('.').parse::<i16>().ok()),
                ) {
                    max.insert(k, n);
                }
            }
            m.values().for_each(|x| tshark_support(x, max));
        }
        Json::Array(a) => a.iter().for_each(|x| tshark_support(x, max)),
        _ => {}
    }
}

/// Our dissection of each PDU: requests directly, responses paired by (stream, correlation id)
/// with a request seen earlier. `None` for a response whose request is not in the capture.
pub fn dissect_all(pdus: &[Pdu]) -> Vec<Option<Dissection>> {
    let mut asked: HashMap<(u64, i32), (i16, i16)> = HashMap::new();
    let mut out = Vec::new();
    for p in pdus {
        if p.is_request {
            let d = dissect_request(&p.bytes);
            if let (Some(k), Some(v), Some(c)) = (
                d.root.find("kafka.api_key").and_then(Field::as_int),
                d.root.find("kafka.api_version").and_then(Field::as_int),
                d.root.find("kafka.correlation_id").and_then(Field::as_int),
            ) {
                asked.insert((p.stream, c as i32), (k as i16, v as i16));
            }
            out.push(Some(d));
        } else {
            let corr = i32::from_be_bytes(p.bytes[4..8].try_into().expect("4 bytes"));
            out.push(
                asked
                    .remove(&(p.stream, corr))
                    .map(|(k, v)| dissect_response(&p.bytes, k, v)),
            );
        }
    }
    out
}

/// Checks that the leaves of a dissection tile the frame exactly.
pub fn tiles(d: &Dissection, frame: &[u8]) -> Result<(), String> {
    let mut pos = 0u32;
    for leaf in d.root.frame_leaves() {
        if leaf.offset != pos {
            return Err(format!(
                "leaf {} at {} but previous ended at {pos}",
                leaf.name(),
                leaf.offset
            ));
        }
        pos += leaf.len;
    }
    if pos as usize != frame.len() {
        return Err(format!(
            "leaves end at {pos}, frame is {} bytes",
            frame.len()
        ));
    }
    Ok(())
}

/// Which of our fields a tshark field corresponds to, for the fields the oracle compares.
fn ours_for(
    tshark_name: &str,
    api_key: i16,
    is_request: bool,
) -> Option<&'static dyn Fn(&Field) -> bool> {
    static API_KEY: fn(&Field) -> bool = |f| f.name() == "kafka.api_key";
    static VERSION: fn(&Field) -> bool = |f| f.name() == "kafka.api_version";
    static CORR: fn(&Field) -> bool = |f| f.name() == "kafka.correlation_id";
    static ERROR: fn(&Field) -> bool = |f| f.short_name() == "error_code";
    static THROTTLE: fn(&Field) -> bool = |f| f.short_name() == "throttle_time_ms";
    static BASE_OFFSET: fn(&Field) -> bool =
        |f| f.name() == "produce.response.responses.partition_responses.base_offset";
    match tshark_name {
        "kafka.request_key" if is_request => Some(&API_KEY),
        "kafka.request.version" if is_request => Some(&VERSION),
        "kafka.correlation_id" => Some(&CORR),
        "kafka.error" if !is_request => Some(&ERROR),
        "kafka.throttle_time" if !is_request => Some(&THROTTLE),
        "kafka.offset" if !is_request && api_key == 0 => Some(&BASE_OFFSET),
        _ => None,
    }
}

/// Compares the oracle's fields with ours: for api key, version, correlation id, error codes,
/// throttle time and produce base offsets, tshark's field at (offset, length) must be one of ours
/// with the same span and value. Returns how many fields were compared.
pub fn compare(p: &Pdu, d: &Dissection, api_key: i16) -> Result<usize, String> {
    let mut all: Vec<&Field> = Vec::new();
    d.root.walk(0, &mut |f, _| all.push(f));
    let mut compared = 0;
    for (name, off, len, shown) in &p.fields {
        let Some(pred) = ours_for(name, api_key, p.is_request) else {
            continue;
        };
        let ours = all.iter().find(|f| {
            f.buffer == 0 && f.offset as usize == *off && f.len as usize == *len && pred(f)
        });
        let Some(ours) = ours else {
            return Err(format!(
                "frame {}: tshark {name}={shown} at [{off}, +{len}] has no matching field of ours",
                p.frame_no
            ));
        };
        let Value::Int(v) = ours.value else {
            return Err(format!(
                "frame {}: {} is not an integer",
                p.frame_no,
                ours.name()
            ));
        };
        let theirs: i64 = shown
            .parse()
            .map_err(|_| format!("tshark value {shown:?} for {name}"))?;
        if v != theirs {
            return Err(format!(
                "frame {}: {} = {v}, tshark {name} = {theirs}",
                p.frame_no,
                ours.name()
            ));
        }
        compared += 1;
    }
    Ok(compared)
}

/// tshark's per-frame values of `fields` (`-T fields`), one row per frame, one column per field.
pub fn field_rows(capture: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .arg("-r")
        .arg(capture)
        .args(["-T", "fields", "-E", "separator=/t"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    String::from_utf8(stdout(&mut cmd))
        .expect("tshark prints UTF-8")
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Names the folder of the third-party captures when it is not `../shared/captures/third-party`.
pub const THIRD_PARTY_ENV: &str = "CHRONIK_THIRD_PARTY_CAPTURES";

/// The folder of the third-party captures ([`THIRD_PARTY_CAPTURES`]): `$CHRONIK_THIRD_PARTY_CAPTURES`,
/// else `../shared/captures/third-party` beside the repository. They are not part of the
/// repository, so a bare clone has none: then this prints why on stderr and returns `None`, and
/// the test skips what reads them. It fails the test instead when they were asked for: under CI
/// (`CI` set, not `false` or `0`) or when `$CHRONIK_THIRD_PARTY_CAPTURES` names a missing folder.
///
/// Call it once in each test that reads them: scripts/test.sh counts the calls to say how many
/// tests skip them, and makes the same decision before the suite starts.
pub fn third_party_dir() -> Option<std::path::PathBuf> {
    let from_env = std::env::var_os(THIRD_PARTY_ENV).filter(|v| !v.is_empty());
    let dir = match &from_env {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/third-party")
        }
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "false" | "0"));
    let why = format!("third-party captures not found at {}", dir.display());
    assert!(from_env.is_none(), "{why} (from ${THIRD_PARTY_ENV})");
    assert!(!ci, "{why} (required under CI; set {THIRD_PARTY_ENV}=DIR)");
    eprintln!("{why} (set {THIRD_PARTY_ENV}=DIR to read them); skipping them");
    None
}

/// Every third-party capture with its broker's port (see PROVENANCE.md there).
pub const THIRD_PARTY_CAPTURES: &[(&str, u16)] = &[
    ("arkime-kafka.pcap", 9092),
    ("deepflow-00-produce-v2.pcap", 9092),
    ("deepflow-00-produce-v7-sw8.pcap", 36333),
    ("deepflow-00-produce-v9.pcap", 36333),
    ("deepflow-01-fetch-v12-ok.pcap", 36333),
    ("deepflow-01-fetch-v12-perf.pcap", 9092),
    ("deepflow-01-fetch-v12-unknown.pcap", 9092),
    ("deepflow-11-join-group-v7.pcap", 36333),
    ("deepflow-13-leave-group-v4.pcap", 36333),
    ("deepflow-14-sync-group-v5.pcap", 36333),
    ("deepflow-18-api-versions-v3.pcap", 9092),
    ("deepflow-mixed-with-unsupported.pcap", 9092),
    ("ndpi-kafka.pcapng", 9092),
];

/// The fields tshark decoded in one PDU's tree, `(name, offset inside the PDU, length, shown
/// value)`; `base` is where the PDU starts in tshark's data source (`kafka_raw`'s position).
pub fn fields_of(tree: &Json, base: usize) -> Vec<(String, usize, usize, String)> {
    let mut fields = Vec::new();
    collect(tree, base, &mut fields, &mut Verdict::default());
    fields
}

/// The BYTES fields of JoinGroup and SyncGroup requests and responses, as tshark names them.
const GROUP_BYTES_FIELDS: [&str; 3] = [
    "kafka.protocol_metadata",
    "kafka.member_metadata",
    "kafka.member_assignment",
];

/// Whether tshark's complaint about a PDU is the known flaw of Wireshark 4.0's Kafka dissector
/// (Debian 12's tshark 4.0.17): its `dissect_kafka_regular_bytes` reads the length of a
/// non-flexible BYTES field as a signed 16-bit integer, where the protocol (and later
/// Wireshark, which reads 32 bits) has a 32-bit one. In JoinGroup before v6 and SyncGroup before
/// v4 (protocol metadata, member metadata, member assignment) it then reads the rest of the PDU
/// two bytes out of step and reports "Dissected message does not end at the pdu length offset";
/// it does so on a live `tshark -i lo` capture of librdkafka's group frames as well.
///
/// True only when the PDU proves it: kafka-protocol (an independent implementation) decodes it
/// to the last byte as the JoinGroup or SyncGroup request or response `key`/`version` say, and
/// one of the BYTES fields tshark shows spans 2 + the 16-bit length at its offset, which is not
/// what the 32-bit length there gives.
pub fn misread_by_16_bit_bytes_length(
    bytes: &[u8],
    is_request: bool,
    key: i16,
    version: i16,
    fields: &[(String, usize, usize, String)],
) -> bool {
    let read_16_bit = fields.iter().any(|(name, off, len, _)| {
        let Some(at) = bytes.get(*off..off + 4) else {
            return false;
        };
        let short = u16::from_be_bytes([at[0], at[1]]) as usize;
        let long = i32::from_be_bytes([at[0], at[1], at[2], at[3]]);
        GROUP_BYTES_FIELDS.contains(&name.as_str())
            && *len == 2 + short
            && usize::try_from(long).map_or(true, |long| *len != 4 + long)
    });
    read_16_bit && group_frame_decodes_whole(bytes, is_request, key, version)
}

/// Whether kafka-protocol decodes a JoinGroup or SyncGroup frame (size prefix included) with
/// no byte left over.
fn group_frame_decodes_whole(frame: &[u8], is_request: bool, key: i16, version: i16) -> bool {
    use kafka_protocol::messages::{
        ApiKey, JoinGroupRequest, JoinGroupResponse, RequestHeader, ResponseHeader,
        SyncGroupRequest, SyncGroupResponse,
    };
    use kafka_protocol::protocol::Decodable;
    fn body<T: Decodable>(buf: &mut bytes::Bytes, version: i16) -> bool {
        T::decode(buf, version).is_ok() && buf.is_empty()
    }
    let Ok(api) = ApiKey::try_from(key) else {
        return false;
    };
    if !matches!(api, ApiKey::JoinGroup | ApiKey::SyncGroup) || frame.len() < 4 {
        return false;
    }
    let mut buf = bytes::Bytes::copy_from_slice(&frame[4..]);
    let join = api == ApiKey::JoinGroup;
    if is_request {
        RequestHeader::decode(&mut buf, api.request_header_version(version)).is_ok()
            && if join {
                body::<JoinGroupRequest>(&mut buf, version)
            } else {
                body::<SyncGroupRequest>(&mut buf, version)
            }
    } else {
        ResponseHeader::decode(&mut buf, api.response_header_version(version)).is_ok()
            && if join {
                body::<JoinGroupResponse>(&mut buf, version)
            } else {
                body::<SyncGroupResponse>(&mut buf, version)
            }
    }
}
