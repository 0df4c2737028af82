//! ApiVersions: the APIs and versions served, each maximum lowered to its version cap.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::{encode, SUPPORTED};
use crate::broker::log::code;
use crate::settings::Knobs;

/// The advertised API list, each maximum lowered to its version cap.
pub(super) fn api_versions_body(error_code: i16, knobs: &Knobs) -> ApiVersionsResponse {
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
    encode(&api_versions_body(code::UNSUPPORTED_VERSION, knobs), 0).unwrap_or_default()
}
