//! The Kafka wire protocol: framing, the schema table, the field registry, the dissector and
//! record sets, with the byte span of every field. Knows nothing of sockets, runtimes or UI.
#![forbid(unsafe_code)]

pub mod api_key;
pub mod batch;
pub mod diff;
pub mod dissect;
pub mod encode;
pub mod errors;
pub mod frame;
pub mod lint;
pub mod mutate;
pub mod placement;
pub mod records;
pub mod registry;
pub mod sasl;
pub mod scan;
pub mod schema;
/// Request and response frames encoded by kafka-protocol, for other crates' unit tests
/// (feature `test-frames`).
#[cfg(any(test, feature = "test-frames"))]
pub mod test_frames;
pub mod tree;

pub use dissect::{
    dissect_request, dissect_request_as, dissect_request_with, dissect_response,
    dissect_response_as, dissect_response_with, Layout, Limits,
};
pub use placement::ThrottlePlacement;
pub use sasl::dissect_sasl_token;
pub use tree::{DecodeError, Dissection, Field, Value};
