//! The Kafka wire protocol: framing, the schema table, the field registry, the dissector and
//! record sets. Knows nothing of sockets or UI.

pub mod api_key;
pub mod batch;
pub mod dissect;
pub mod errors;
pub mod frame;
pub mod placement;
pub mod records;
pub mod registry;
pub mod sasl;
pub mod schema;
#[cfg(test)]
pub(crate) mod test_frames;
pub mod tree;

pub use dissect::{
    dissect_request, dissect_request_with, dissect_response, dissect_response_with, Limits,
};
pub use placement::ThrottlePlacement;
pub use sasl::dissect_sasl_token;
pub use tree::{DecodeError, Dissection, Field, Value};
