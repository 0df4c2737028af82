//! SASL/PLAIN: SaslHandshake and SaslAuthenticate, and the check of a PLAIN token.

use crate::broker::state::Shared;

/// Checks a SASL/PLAIN token (`authzid NUL user NUL password`) against the configured pair.
pub(crate) fn check_plain(shared: &Shared, token: &[u8]) -> bool {
    let Some((user, pass)) = &shared.config.sasl_plain else {
        return false;
    };
    let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    parts.len() == 3 && parts[1] == user.as_bytes() && parts[2] == pass.as_bytes()
}
