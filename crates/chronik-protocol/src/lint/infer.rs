//! A response whose request is not in the capture: which APIs and versions its body reads as,
//! cleanly and to the last byte.

use super::layout::clean;
use super::{Code, Finding, Side};
use crate::dissect::{dissect_response_as, Layout, Limits};
use crate::registry;

/// Frames larger than this are not tried against every API.
const MAX_FRAME: usize = 1 << 20;
/// Candidates named in the message; the rest are counted.
const SHOWN: usize = 6;

/// Every (api key, version) whose response layout reads the frame cleanly to its last byte
/// (as many as the lint's reading budget allows for a frame that size: all 207 up to 150 KiB).
pub fn candidates(frame: &[u8]) -> Vec<(i16, i16)> {
    if frame.len() > MAX_FRAME {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut left = super::layout::trials_for(frame.len(), usize::MAX);
    for api in registry::catalog().apis.values() {
        for v in api.versions.min..=api.versions.max {
            if left == 0 {
                return out;
            }
            left -= 1;
            let d = dissect_response_as(frame, api.key, v, Layout::default(), Limits::CHECK_ONLY);
            if clean(&d) {
                out.push((api.key, v));
            }
        }
    }
    out
}

/// `Metadata v0-v3`, `ApiVersions v0, v2`: an API's versions, runs joined.
fn versions_text(versions: &[i16]) -> String {
    let mut runs: Vec<(i16, i16)> = Vec::new();
    for &v in versions {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == v => *hi = v,
            _ => runs.push((v, v)),
        }
    }
    runs.iter()
        .map(|(lo, hi)| {
            if lo == hi {
                format!("v{lo}")
            } else {
                format!("v{lo}-v{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The finding on a response whose request is unknown.
pub(super) fn finding(frame: &[u8]) -> Finding {
    let found = candidates(frame);
    let mut by_api: Vec<(i16, Vec<i16>)> = Vec::new();
    for (k, v) in found {
        match by_api.last_mut() {
            Some((key, vs)) if *key == k => vs.push(v),
            _ => by_api.push((k, vec![v])),
        }
    }
    let named: Vec<String> = by_api
        .iter()
        .take(SHOWN)
        .map(|(k, vs)| format!("{} {}", registry::api_name(*k), versions_text(vs)))
        .collect();
    let message = match by_api.len() {
        0 => "the body reads cleanly as no API's response".into(),
        n if n > SHOWN => format!(
            "the body reads cleanly as {} and {} more APIs",
            named.join(", "),
            n - SHOWN
        ),
        _ => format!("the body reads cleanly as {}", named.join(", ")),
    };
    Finding::new(
        Code::RequestNotCaptured,
        Side::Response,
        message,
        8.min(frame.len()),
        frame.len(),
    )
}
