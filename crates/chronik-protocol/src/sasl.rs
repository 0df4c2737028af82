//! Bare SASL tokens. After SaslHandshake v0 (KIP-43, before KIP-152 brought SaslAuthenticate)
//! the client sends its mechanism's bytes behind a 4-byte size prefix and nothing else: no
//! request header, no correlation id. The broker answers the same way (for PLAIN an empty token
//! on success; on failure it closes the connection). kafka-python 2.0.2 authenticates like
//! this.

use super::tree::{DecodeError, Dissection, Field, Value};
use crate::fid;

/// Dissects a bare SASL token frame (size prefix included), sent by the client
/// (`is_request`) or by the broker. A client's token in the PLAIN layout (RFC 4616:
/// `[authzid] NUL authcid NUL password`) shows its three parts.
pub fn dissect_sasl_token(frame: &[u8], is_request: bool) -> Dissection {
    let root_id = if is_request {
        fid!("kafka.request")
    } else {
        fid!("kafka.response")
    };
    let mut root = Field::group(root_id, 0, Value::Group);
    root.close(frame.len());
    let fail = |root: Field, offset: usize, message: String| Dissection {
        root,
        error: Some(DecodeError {
            offset,
            path: "kafka.length".into(),
            message,
        }),
        buffers: Vec::new(),
    };
    let Some(prefix) = frame.get(..4) else {
        return fail(
            root,
            0,
            format!("{} bytes, too short for a size prefix", frame.len()),
        );
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    root.children.push(Field::leaf(
        fid!("kafka.length"),
        0,
        4,
        Value::Int(size.into()),
    ));
    let body = &frame[4..];
    let mut token = Field::leaf(
        fid!("sasl.token"),
        4,
        body.len(),
        Value::Bytes {
            start: 4,
            len: body.len() as u32,
        },
    );
    if is_request {
        token.children = plain_parts(body, 4);
    }
    root.children.push(token);
    if usize::try_from(size).ok() != Some(body.len()) {
        return fail(
            root,
            0,
            format!("size prefix {size}, but {} bytes follow it", body.len()),
        );
    }
    Dissection {
        root,
        error: None,
        buffers: Vec::new(),
    }
}

/// A PLAIN message (RFC 4616): `[authzid] NUL authcid NUL password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain<'a> {
    pub authzid: &'a str,
    pub authcid: &'a str,
    pub password: &'a [u8],
}

/// Reads a PLAIN message; none when `token` is not one (not exactly two NULs, an empty
/// authcid, or text that is not UTF-8).
pub fn parse_plain(token: &[u8]) -> Option<Plain<'_>> {
    let nuls: Vec<usize> = token
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == 0)
        .map(|(i, _)| i)
        .collect();
    let [first, second] = nuls[..] else {
        return None;
    };
    let authzid = std::str::from_utf8(&token[..first]).ok()?;
    let authcid = std::str::from_utf8(&token[first + 1..second]).ok()?;
    if authcid.is_empty() {
        return None;
    }
    Some(Plain {
        authzid,
        authcid,
        password: &token[second + 1..],
    })
}

/// The three parts of a PLAIN message starting at `base` (none when `token` is not one).
fn plain_parts(token: &[u8], base: usize) -> Vec<Field> {
    let Some(p) = parse_plain(token) else {
        return Vec::new();
    };
    let (first, second) = (p.authzid.len(), p.authzid.len() + 1 + p.authcid.len());
    vec![
        Field::leaf(
            fid!("sasl.plain.authzid"),
            base,
            first,
            Value::Str(p.authzid.to_string()),
        ),
        Field::leaf(
            fid!("sasl.plain.authcid"),
            base + first + 1,
            p.authcid.len(),
            Value::Str(p.authcid.to_string()),
        ),
        Field::leaf(
            fid!("sasl.plain.password"),
            base + second + 1,
            p.password.len(),
            Value::Bytes {
                start: (base + second + 1) as u32,
                len: p.password.len() as u32,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn a_plain_token_shows_its_parts_and_tiles_the_frame() {
        let f = frame(b"\0alice\0s3cret");
        let d = dissect_sasl_token(&f, true);
        assert!(d.error.is_none(), "{:?}", d.error);
        assert_eq!(d.root.len as usize, f.len());
        let token = d.root.find("sasl.token").unwrap();
        assert_eq!((token.offset, token.len), (4, 13));
        let authcid = d.root.find("sasl.plain.authcid").unwrap();
        assert_eq!(authcid.value, Value::Str("alice".into()));
        assert_eq!(&f[authcid.offset as usize..][..5], b"alice");
        let password = d.root.find("sasl.plain.password").unwrap();
        assert_eq!(
            &f[password.offset as usize..][..password.len as usize],
            b"s3cret"
        );
        assert_eq!(
            d.root.find("sasl.plain.authzid").unwrap().value,
            Value::Str(String::new())
        );
    }

    #[test]
    fn the_brokers_empty_answer_and_other_mechanisms() {
        let d = dissect_sasl_token(&frame(b""), false);
        assert!(d.error.is_none());
        assert_eq!(d.root.find("sasl.token").unwrap().len, 0);
        // Not PLAIN's layout: the token stays whole.
        let d = dissect_sasl_token(&frame(b"n,,n=user,r=abc"), true);
        assert!(d.error.is_none());
        assert!(d.root.find("sasl.plain.authcid").is_none());
    }

    #[test]
    fn a_wrong_size_prefix_is_an_error_at_byte_0() {
        let mut f = frame(b"\0a\0b");
        f.push(9);
        let d = dissect_sasl_token(&f, true);
        let e = d.error.unwrap();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("5 bytes follow"), "{}", e.message);
        assert!(dissect_sasl_token(&[0, 0], true).error.is_some());
        assert!(dissect_sasl_token(&[0xff, 0xff, 0xff, 0xff], false)
            .error
            .is_some());
    }
}
