//! SASL/PLAIN: SaslHandshake and SaslAuthenticate, and the check of a PLAIN token.

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::{reply, s, Outcome};
use crate::state::{Conn, Shared};
use chronik_protocol::errors;

/// SaslHandshake: PLAIN is the one mechanism, offered only when credentials are configured.
/// After a v0 handshake the next frame is a bare token (see `Conn::raw_sasl_next`).
pub(super) fn sasl_handshake(
    shared: &Shared,
    conn: &mut Conn,
    req: SaslHandshakeRequest,
    version: i16,
) -> Outcome {
    let enabled = shared.config.sasl_plain.is_some();
    let ok = enabled && req.mechanism.as_str() == "PLAIN";
    let resp = SaslHandshakeResponse::default()
        .with_error_code(if ok {
            0
        } else if enabled {
            errors::UNSUPPORTED_SASL_MECHANISM
        } else {
            errors::ILLEGAL_SASL_STATE
        })
        .with_mechanisms(if enabled { vec![s("PLAIN")] } else { vec![] });
    if ok && version == 0 {
        conn.raw_sasl_next = true;
    }
    reply(&resp, version)
}

/// SaslAuthenticate: checks the PLAIN token; a failure is answered, then the connection closes.
pub(super) fn sasl_authenticate(
    shared: &Shared,
    conn: &mut Conn,
    req: SaslAuthenticateRequest,
    version: i16,
) -> Outcome {
    let ok = check_plain(shared, &req.auth_bytes);
    let resp = if ok {
        conn.authenticated = true;
        SaslAuthenticateResponse::default()
    } else {
        tracing::warn!(conn = conn.id, peer = %conn.peer, "SASL/PLAIN authentication failed");
        SaslAuthenticateResponse::default()
            .with_error_code(errors::SASL_AUTHENTICATION_FAILED)
            .with_error_message(Some(s(
                "Authentication failed: invalid username or password",
            )))
    };
    match (reply(&resp, version), ok) {
        (Outcome::Reply { body, notes, .. }, false) => Outcome::Reply {
            body,
            notes,
            close_after: true,
        },
        (o, _) => o,
    }
}

/// Checks a SASL/PLAIN token (`authzid NUL user NUL password`) against the configured pair.
pub(crate) fn check_plain(shared: &Shared, token: &[u8]) -> bool {
    let Some((user, pass)) = &shared.config.sasl_plain else {
        return false;
    };
    let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == pass.as_bytes()
}
