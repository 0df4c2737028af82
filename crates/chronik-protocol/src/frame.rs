//! Length-prefixed framing: every Kafka request and response is a 4-byte big-endian size followed
//! by that many bytes (reading frames off a socket is the broker's: `chronik_broker::frame`).

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Prefixes a body with its size.
pub fn with_size_prefix(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}
