//! Request and response frames (size prefix included) encoded by kafka-protocol, the
//! independent implementation the crate's unit tests feed to the dissector, the capture
//! streams, the filter and the stall detector.

use bytes::BytesMut;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

/// A request of API `key`, `version` with its header (the header version the message type
/// needs).
pub fn request_frame<R: Encodable + HeaderVersion>(
    key: i16,
    version: i16,
    corr: i32,
    client: Option<&str>,
    req: &R,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(client.map(|c| StrBytes::from_string(c.to_string())));
    let mut b = BytesMut::new();
    header
        .encode(&mut b, R::header_version(version))
        .expect("header");
    req.encode(&mut b, version).expect("body");
    super::frame::with_size_prefix(&b)
}

/// A response with its header (ApiVersions' is always v0, as the message type says).
pub fn response_frame<R: Encodable + HeaderVersion>(version: i16, corr: i32, resp: &R) -> Vec<u8> {
    let mut b = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut b, R::header_version(version))
        .expect("header");
    resp.encode(&mut b, version).expect("body");
    super::frame::with_size_prefix(&b)
}

/// One uncompressed magic-2 batch of records holding `values` (no keys, offsets from 0), as
/// kafka-protocol writes it.
pub fn record_batch(values: &[&[u8]]) -> bytes::Bytes {
    record_batch_with(values, kafka_protocol::records::Compression::None)
}

/// [`record_batch`] compressed with `compression`.
pub fn record_batch_with(
    values: &[&[u8]],
    compression: kafka_protocol::records::Compression,
) -> bytes::Bytes {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut b = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut b,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("batch");
    b.freeze()
}

/// A body for every field of `fields` at `version`, for the schema's own encoder
/// ([`crate::encode`]): tagged fields left out, one element in every array, integers 1,
/// strings `s`, three bytes of data.
pub fn filled(fields: &[crate::schema::FieldDef], version: i16) -> crate::encode::Input {
    use crate::encode::Input;
    use crate::schema::{FieldDef, FieldType};
    fn value(f: &FieldDef, ty: &FieldType, version: i16) -> Input {
        match ty {
            FieldType::Array(inner) => Input::List(vec![value(f, inner, version)]),
            FieldType::Struct => filled(&f.children, version),
            FieldType::Bool => Input::Bool(true),
            FieldType::String => Input::Str("s".into()),
            FieldType::Bytes | FieldType::Records => Input::Bytes(vec![1, 2, 3]),
            FieldType::Float64 => Input::Float(1.5),
            FieldType::Uuid => Input::Str("0b5f8c1e-6a2d-4b7e-9c3f-1d2e3f4a5b6c".into()),
            _ => Input::Int(1),
        }
    }
    Input::Map(
        fields
            .iter()
            .filter(|f| f.tag.is_none() && f.versions.contains(version))
            .map(|f| (f.name.clone(), value(f, &f.ty, version)))
            .collect(),
    )
}
