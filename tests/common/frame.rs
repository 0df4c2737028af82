//! Request frames encoded by kafka-protocol, the independent implementation the tests (and the
//! decode benchmark, which includes this file by path) send to the broker.

/// A request frame, size prefix included, encoded by kafka-protocol with the request header
/// version that API and version need.
pub fn request_frame<Req: kafka_protocol::protocol::Encodable>(
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    req: &Req,
) -> Vec<u8> {
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut b = bytes::BytesMut::new();
    header
        .encode(&mut b, key.request_header_version(version))
        .expect("request header encodes");
    req.encode(&mut b, version).expect("request encodes");
    let mut frame = (b.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&b);
    frame
}
