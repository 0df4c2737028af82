//! ApiVersions: the APIs and versions served, each maximum lowered to its version cap.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{encode, reply, supported, Outcome, SUPPORTED};
use crate::settings::Knobs;
use crate::state::Conn;
use chronik_protocol::errors;

/// ApiVersions: remembers the client software (v3+) and the caps this connection was told, and
/// answers with the list; the notes name the software and any maxima lowered by a cap.
pub(super) fn api_versions(
    conn: &mut Conn,
    knobs: &Knobs,
    req: ApiVersionsRequest,
    version: i16,
) -> Outcome {
    if version >= 3 {
        conn.client_software = Some((
            req.client_software_name.to_string(),
            req.client_software_version.to_string(),
        ));
        conn.identity.software_name = Some(req.client_software_name.to_string());
        conn.identity.software_version = Some(req.client_software_version.to_string());
        tracing::info!(conn = conn.id, name = %req.client_software_name,
            version = %req.client_software_version, "client software");
    }
    conn.advertised_caps = Some(knobs.caps.clone());
    let mut out = reply(
        &api_versions_body(0, knobs).with_throttle_time_ms(knobs.throttle_ms),
        version,
    );
    if let Outcome::Reply { notes, .. } = &mut out {
        if let Some((name, ver)) = &conn.client_software {
            notes.push(format!("client software: {name} {ver}"));
        }
        let lowered: Vec<String> = knobs
            .caps_text()
            .into_iter()
            .zip(knobs.caps.iter())
            .filter(|(_, (k, cap))| supported(**k).is_some_and(|(_, hi)| hi > **cap))
            .map(|(text, _)| text)
            .collect();
        if !lowered.is_empty() {
            notes.push(format!("version caps advertised: {}", lowered.join(", ")));
        }
    }
    out
}

/// The advertised API list, each maximum lowered to its version cap.
fn api_versions_body(error_code: i16, knobs: &Knobs) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(k, lo, hi)| {
                    let (lo, hi) = knobs.capped(k, lo, hi);
                    ApiVersion::default()
                        .with_api_key(k)
                        .with_min_version(lo)
                        .with_max_version(hi)
                })
                .collect(),
        )
}

/// ApiVersionsResponse v0 with UNSUPPORTED_VERSION and the supported list (caps applied).
pub(crate) fn api_versions_unsupported(knobs: &Knobs) -> BytesMut {
    encode(&api_versions_body(errors::UNSUPPORTED_VERSION, knobs), 0).unwrap_or_default()
}
