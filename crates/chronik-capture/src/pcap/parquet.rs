//! Exchanges as a Parquet table (`--record FILE.parquet`, `decode --parquet FILE`): one row per
//! exchange, its summary fields as columns and both frames as binary, for DuckDB, Spark or
//! pandas to query a fleet's captures. Each value is computed where the other outputs compute
//! it: the JSON object's ([`render::json`]), the headless line's ([`render`]'s summary parts),
//! the [`Verdict`]'s. Connection events and markers have no row (the JSON lines and pcapng
//! outputs keep them).
//!
//! Rows are gathered in memory and written out as a row group every [`RowGroupLimits`] rows or
//! bytes of frames, so a recording of any length holds at most one row group; the file is
//! complete (readable) once [`ParquetExporter::finish`] writes its footer.

use std::io::{self, Write};
use std::sync::Arc;

use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::{EnabledStatistics, WriterProperties};
use ::parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use ::parquet::schema::types::ColumnPath;

use crate::{render, Exchange};

/// The table's schema, in Parquet's message syntax. Lists are required (empty when there is
/// nothing to list), with required elements.
pub const SCHEMA: &str = "
message exchange {
  required int64 id;
  required int64 time (TIMESTAMP(MICROS,true));
  optional int64 response_time (TIMESTAMP(MICROS,true));
  required int64 conn;
  required binary client_addr (STRING);
  required int32 client_port (INTEGER(16,false));
  optional binary server_addr (STRING);
  optional int32 server_port (INTEGER(16,false));
  optional binary client_id (STRING);
  required int32 api_key (INTEGER(16,true));
  optional binary api (STRING);
  required int32 api_version (INTEGER(16,true));
  required int32 correlation_id;
  optional int64 latency_us;
  required binary status (STRING);
  optional binary status_reason (STRING);
  required binary verdict (STRING);
  optional int32 error_code (INTEGER(16,true));
  optional binary error (STRING);
  optional int32 throttle_time_ms;
  required group topics (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  optional int32 request_size;
  optional int32 response_size;
  required group lint (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  required group notes (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  optional binary placement (STRING);
  optional binary request;
  optional binary response;
}
";

/// When the rows gathered are written out as a row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupLimits {
    /// Rows.
    pub rows: usize,
    /// Bytes of frames (and a little for each row's other columns).
    pub bytes: usize,
}

impl Default for RowGroupLimits {
    /// 100,000 rows or 64 MiB, whichever comes first.
    fn default() -> Self {
        RowGroupLimits {
            rows: 100_000,
            bytes: 64 << 20,
        }
    }
}

/// What a row's columns other than the frames count for in [`RowGroupLimits::bytes`].
const ROW_OVERHEAD: usize = 256;

/// One column's values gathered for a row group, with their definition and repetition levels
/// (empty for a required column, which has none).
struct Col<T> {
    values: Vec<T>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

impl<T> Default for Col<T> {
    fn default() -> Self {
        Col {
            values: Vec::new(),
            def: Vec::new(),
            rep: Vec::new(),
        }
    }
}

impl<T> Col<T> {
    /// A required column's value.
    fn put(&mut self, v: T) {
        self.values.push(v);
    }

    /// An optional column's value, or null.
    fn opt(&mut self, v: Option<T>) {
        match v {
            Some(v) => {
                self.values.push(v);
                self.def.push(1);
            }
            None => self.def.push(0),
        }
    }

    /// A required list's elements (none: an empty list).
    fn list(&mut self, items: impl IntoIterator<Item = T>) {
        let mut rep = 0;
        for v in items {
            self.values.push(v);
            self.def.push(1);
            self.rep.push(rep);
            rep = 1;
        }
        if rep == 0 {
            self.def.push(0);
            self.rep.push(0);
        }
    }
}

fn text(s: impl Into<String>) -> ByteArray {
    ByteArray::from(s.into().into_bytes())
}

/// The rows of the row group being gathered, column by column in the schema's order.
#[derive(Default)]
struct Rows {
    id: Col<i64>,
    time: Col<i64>,
    response_time: Col<i64>,
    conn: Col<i64>,
    client_addr: Col<ByteArray>,
    client_port: Col<i32>,
    server_addr: Col<ByteArray>,
    server_port: Col<i32>,
    client_id: Col<ByteArray>,
    api_key: Col<i32>,
    api: Col<ByteArray>,
    api_version: Col<i32>,
    correlation_id: Col<i32>,
    latency_us: Col<i64>,
    status: Col<ByteArray>,
    status_reason: Col<ByteArray>,
    verdict: Col<ByteArray>,
    error_code: Col<i32>,
    error: Col<ByteArray>,
    throttle_time_ms: Col<i32>,
    topics: Col<ByteArray>,
    request_size: Col<i32>,
    response_size: Col<i32>,
    lint: Col<ByteArray>,
    notes: Col<ByteArray>,
    placement: Col<ByteArray>,
    request: Col<ByteArray>,
    response: Col<ByteArray>,
    /// Rows gathered.
    count: usize,
    /// What they count for in [`RowGroupLimits::bytes`].
    bytes: usize,
}

/// A frame's size as the column holds it.
fn size(frame: &[u8]) -> i32 {
    i32::try_from(frame.len()).unwrap_or(i32::MAX)
}

impl Rows {
    /// Adds an exchange's row: its frames dissected once, every column read from that.
    fn push(&mut self, ex: &Exchange) {
        let d = ex.dissect();
        let v = &d.verdict;
        self.id.put(i64::try_from(ex.id).unwrap_or(i64::MAX));
        self.time.put(ex.request_at);
        self.response_time.opt(ex.response_at());
        self.conn.put(i64::try_from(ex.conn).unwrap_or(i64::MAX));
        self.client_addr.put(text(ex.peer().ip().to_string()));
        self.client_port.put(ex.peer().port().into());
        self.server_addr
            .opt(ex.server().map(|s| text(s.ip().to_string())));
        self.server_port.opt(ex.server().map(|s| s.port().into()));
        self.client_id.opt(ex.client_id().map(text));
        self.api_key.put(ex.api_key.into());
        self.api.opt(render::api_name(ex).map(text));
        self.api_version.put(ex.api_version.into());
        self.correlation_id.put(ex.correlation_id);
        self.latency_us.opt(ex.latency_micros());
        self.status.put(text(ex.status.word()));
        self.status_reason.opt(ex.status.reason().map(text));
        self.verdict.put(text(v.severity.word()));
        // As the display filter's `error`: with a response, its first error code that is not
        // 0, else 0 (NONE).
        let code = ex.response().map(|_| v.errors().next().unwrap_or(0));
        self.error_code.opt(code.map(i32::from));
        self.error
            .opt(code.map(|c| text(chronik_protocol::errors::error_name(c))));
        // Read only from a response whose body was read as its API lays it out, as the
        // headless line's `throttle=`.
        let throttle = (d.response.as_ref())
            .filter(|_| v.response_read)
            .and_then(render::throttle_time_ms);
        self.throttle_time_ms
            .opt(throttle.map(|t| i32::try_from(t).unwrap_or(i32::MAX)));
        let topics = d.request.as_ref().map(render::request_topics);
        self.topics.list(topics.into_iter().flatten().map(text));
        self.request_size
            .opt(ex.request_seen().then(|| size(ex.request())));
        self.response_size.opt(ex.response().map(size));
        self.lint
            .list(v.findings.iter().map(|f| text(f.code.word())));
        self.notes.list(ex.notes().iter().cloned().map(text));
        self.placement
            .opt(ex.placement().map(|p| text(p.placement.word())));
        self.request.opt(
            ex.request_seen()
                .then(|| ByteArray::from(ex.request().to_vec())),
        );
        self.response
            .opt(ex.response().map(|r| ByteArray::from(r.to_vec())));
        self.count += 1;
        self.bytes += ROW_OVERHEAD + ex.size();
    }

    /// Writes the rows as one row group, in the schema's column order, and clears them.
    fn write<W: Write + Send>(&mut self, file: &mut SerializedFileWriter<W>) -> io::Result<()> {
        let mut g = file.next_row_group().map_err(io::Error::other)?;
        write_col::<Int64Type, W>(&mut g, &self.id)?;
        write_col::<Int64Type, W>(&mut g, &self.time)?;
        write_col::<Int64Type, W>(&mut g, &self.response_time)?;
        write_col::<Int64Type, W>(&mut g, &self.conn)?;
        write_col::<ByteArrayType, W>(&mut g, &self.client_addr)?;
        write_col::<Int32Type, W>(&mut g, &self.client_port)?;
        write_col::<ByteArrayType, W>(&mut g, &self.server_addr)?;
        write_col::<Int32Type, W>(&mut g, &self.server_port)?;
        write_col::<ByteArrayType, W>(&mut g, &self.client_id)?;
        write_col::<Int32Type, W>(&mut g, &self.api_key)?;
        write_col::<ByteArrayType, W>(&mut g, &self.api)?;
        write_col::<Int32Type, W>(&mut g, &self.api_version)?;
        write_col::<Int32Type, W>(&mut g, &self.correlation_id)?;
        write_col::<Int64Type, W>(&mut g, &self.latency_us)?;
        write_col::<ByteArrayType, W>(&mut g, &self.status)?;
        write_col::<ByteArrayType, W>(&mut g, &self.status_reason)?;
        write_col::<ByteArrayType, W>(&mut g, &self.verdict)?;
        write_col::<Int32Type, W>(&mut g, &self.error_code)?;
        write_col::<ByteArrayType, W>(&mut g, &self.error)?;
        write_col::<Int32Type, W>(&mut g, &self.throttle_time_ms)?;
        write_col::<ByteArrayType, W>(&mut g, &self.topics)?;
        write_col::<Int32Type, W>(&mut g, &self.request_size)?;
        write_col::<Int32Type, W>(&mut g, &self.response_size)?;
        write_col::<ByteArrayType, W>(&mut g, &self.lint)?;
        write_col::<ByteArrayType, W>(&mut g, &self.notes)?;
        write_col::<ByteArrayType, W>(&mut g, &self.placement)?;
        write_col::<ByteArrayType, W>(&mut g, &self.request)?;
        write_col::<ByteArrayType, W>(&mut g, &self.response)?;
        if g.next_column().map_err(io::Error::other)?.is_some() {
            return Err(io::Error::other(
                "the Parquet schema has more columns than written",
            ));
        }
        g.close().map_err(io::Error::other)?;
        *self = Rows::default();
        Ok(())
    }
}

/// Levels for the column writer: none for a required column.
fn levels(l: &[i16]) -> Option<&[i16]> {
    (!l.is_empty()).then_some(l)
}

/// Writes one column of a row group from what was gathered.
fn write_col<T: DataType, W: Write + Send>(
    g: &mut SerializedRowGroupWriter<'_, W>,
    c: &Col<T::T>,
) -> io::Result<()> {
    let mut col = g
        .next_column()
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other("the Parquet schema has fewer columns than written"))?;
    col.typed::<T>()
        .write_batch(&c.values, levels(&c.def), levels(&c.rep))
        .map_err(io::Error::other)?;
    col.close().map_err(io::Error::other)
}

/// The writer's settings: zstd pages, dictionaries and statistics for every column but the
/// frames (whose values are large and all different).
fn properties() -> Result<WriterProperties, ParquetError> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_created_by(format!("chronik-tui {}", env!("CARGO_PKG_VERSION")));
    for frame in ["request", "response"] {
        let path = ColumnPath::from(frame);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    Ok(b.build())
}

/// A writer of exchanges into a Parquet file.
pub struct ParquetExporter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    /// Boxed: two dozen columns, kept off the stack of whatever holds the writer.
    rows: Box<Rows>,
    limits: RowGroupLimits,
    row_groups: usize,
    exchanges: usize,
}

impl<W: Write + Send> ParquetExporter<W> {
    /// A writer into `out` (the file's magic is written at once), with the default limits.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_limits(out, RowGroupLimits::default())
    }

    /// A writer into `out` that writes a row group whenever `limits` is reached.
    pub fn with_limits(out: W, limits: RowGroupLimits) -> io::Result<Self> {
        let schema =
            ::parquet::schema::parser::parse_message_type(SCHEMA).map_err(io::Error::other)?;
        let props = properties().map_err(io::Error::other)?;
        let file = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props))
            .map_err(io::Error::other)?;
        Ok(ParquetExporter {
            file,
            rows: Box::default(),
            limits,
            row_groups: 0,
            exchanges: 0,
        })
    }

    /// One exchange's row; writes the row group when it is full.
    pub fn exchange(&mut self, ex: &Exchange) -> io::Result<()> {
        self.rows.push(ex);
        self.exchanges += 1;
        if self.rows.count >= self.limits.rows || self.rows.bytes >= self.limits.bytes {
            self.write_rows()?;
        }
        Ok(())
    }

    fn write_rows(&mut self) -> io::Result<()> {
        if self.rows.count > 0 {
            self.rows.write(&mut self.file)?;
            self.row_groups += 1;
        }
        Ok(())
    }

    /// Writes out the row groups written so far (the rows still gathered wait for theirs: a
    /// Parquet file is read through its footer, which only [`ParquetExporter::finish`] writes).
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Exchanges written (or gathered for the next row group).
    pub fn exchanges(&self) -> usize {
        self.exchanges
    }

    /// Row groups written so far.
    pub fn row_groups(&self) -> usize {
        self.row_groups
    }

    /// Writes the last row group and the footer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_rows()?;
        let mut out = self.file.into_inner().map_err(io::Error::other)?;
        out.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    use ::parquet::record::Field;

    use super::*;
    use crate::{Endpoints, PlacementUsed, Status};
    use chronik_protocol::{DecodeError, ThrottlePlacement};
    use std::sync::Arc;

    use chronik_protocol::frame::with_size_prefix as frame;

    /// An answered ApiVersions v0 (error 35, UNSUPPORTED_VERSION, in its response), a malformed
    /// request, a Produce waiting for its response, and a response whose request is not there.
    fn sample() -> Vec<Exchange> {
        let peer: SocketAddr = "127.0.0.1:50001".parse().unwrap();
        let server = Some("[::1]:9092".parse().unwrap());
        let mut a = Exchange::new(1, Endpoints::shared(peer, server), 1_000, Status::Answered);
        a.id = 1;
        a.set_client_id(Some(Arc::new("c".into())));
        a.api_key = 18;
        a.api_version = 0;
        a.correlation_id = 4;
        a.set_request(frame(&[0, 18, 0, 0, 0, 0, 0, 4, 0, 1, b'c']));
        // correlation id 4, error_code 35, no api_versions.
        a.set_response(Some(frame(&[0, 0, 0, 4, 0, 35, 0, 0, 0, 0])));
        a.set_response_at(Some(1_500));
        a.set_notes(vec!["first".into(), "second".into()]);
        a.set_placement(Some(PlacementUsed {
            placement: ThrottlePlacement::Front,
            rule: None,
        }));
        let mut b = Exchange::new(
            2,
            Endpoints::of(peer),
            2_000,
            Status::malformed(DecodeError {
                offset: 4,
                path: "kafka.request_header".into(),
                message: "short".into(),
            }),
        );
        b.id = 2;
        b.set_request(frame(&[0, 1]));
        let mut c = Exchange::new(3, Endpoints::of(peer), 3_000, Status::Unanswered);
        c.id = 3;
        c.api_key = 0;
        c.api_version = 7;
        c.set_request(frame(&[0, 0, 0, 7, 0, 0, 0, 9, 0xff, 0xff]));
        let mut d = Exchange::new(4, Endpoints::of(peer), 4_000, Status::Answered);
        d.id = 4;
        d.set_response(Some(frame(&[0, 0, 0, 5, 1, 2, 3])));
        d.set_response_at(Some(4_000));
        vec![a, b, c, d]
    }

    /// A file's rows, each column by name.
    fn rows(file: Vec<u8>) -> (usize, Vec<BTreeMap<String, Field>>) {
        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).unwrap();
        let groups = reader.metadata().num_row_groups();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        (groups, rows)
    }

    fn texts(f: &Field) -> Vec<String> {
        match f {
            Field::ListInternal(l) => l
                .elements()
                .iter()
                .map(|e| match e {
                    Field::Str(s) => s.clone(),
                    other => panic!("a list of {other:?}"),
                })
                .collect(),
            other => panic!("{other:?} is not a list"),
        }
    }

    fn bytes(f: &Field) -> Option<Vec<u8>> {
        match f {
            Field::Bytes(b) => Some(b.data().to_vec()),
            Field::Null => None,
            other => panic!("{other:?} is not binary"),
        }
    }

    #[test]
    fn rows_read_back_with_every_column_in_row_groups_of_the_limit() {
        let mut w = ParquetExporter::with_limits(
            Vec::new(),
            RowGroupLimits {
                rows: 3,
                bytes: usize::MAX,
            },
        )
        .unwrap();
        for ex in sample() {
            w.exchange(&ex).unwrap();
        }
        assert_eq!(w.row_groups(), 1, "3 rows fill the first row group");
        assert_eq!(w.exchanges(), 4);
        let (groups, rows) = rows(w.finish().unwrap());
        assert_eq!(groups, 2);
        assert_eq!(rows.len(), 4);
        let columns = ::parquet::schema::parser::parse_message_type(SCHEMA).unwrap();
        assert_eq!(rows[0].len(), columns.get_fields().len());

        let r = &rows[0];
        assert_eq!(r["id"], Field::Long(1));
        assert_eq!(r["time"], Field::TimestampMicros(1_000));
        assert_eq!(r["response_time"], Field::TimestampMicros(1_500));
        assert_eq!(r["conn"], Field::Long(1));
        assert_eq!(r["client_addr"], Field::Str("127.0.0.1".into()));
        assert_eq!(r["client_port"], Field::UShort(50001));
        assert_eq!(r["server_addr"], Field::Str("::1".into()));
        assert_eq!(r["server_port"], Field::UShort(9092));
        assert_eq!(r["client_id"], Field::Str("c".into()));
        assert_eq!(r["api_key"], Field::Short(18));
        assert_eq!(r["api"], Field::Str("ApiVersions".into()));
        assert_eq!(r["api_version"], Field::Short(0));
        assert_eq!(r["correlation_id"], Field::Int(4));
        assert_eq!(r["latency_us"], Field::Long(500));
        assert_eq!(r["status"], Field::Str("answered".into()));
        assert_eq!(r["status_reason"], Field::Null);
        assert_eq!(r["verdict"], Field::Str("error".into()));
        assert_eq!(r["error_code"], Field::Short(35));
        assert_eq!(r["error"], Field::Str("UNSUPPORTED_VERSION".into()));
        assert_eq!(r["throttle_time_ms"], Field::Null, "v0 has none");
        assert_eq!(texts(&r["topics"]), Vec::<String>::new());
        assert_eq!(r["request_size"], Field::Int(15));
        assert_eq!(r["response_size"], Field::Int(14));
        assert_eq!(texts(&r["notes"]), ["first", "second"]);
        assert_eq!(r["placement"], Field::Str("front".into()));
        assert_eq!(bytes(&r["request"]), Some(sample()[0].request().to_vec()));
        assert_eq!(
            bytes(&r["response"]),
            sample()[0].response().map(<[u8]>::to_vec)
        );

        let r = &rows[1];
        assert_eq!(r["status"], Field::Str("malformed".into()));
        assert_eq!(
            r["status_reason"],
            Field::Str("short at byte 4 (kafka.request_header)".into())
        );
        assert_eq!(r["verdict"], Field::Str("malformed".into()));
        assert_eq!(r["api_key"], Field::Short(-1));
        for null in [
            "response_time",
            "server_addr",
            "server_port",
            "client_id",
            "latency_us",
            "error_code",
            "error",
            "response_size",
            "placement",
            "response",
        ] {
            assert_eq!(r[null], Field::Null, "{null}");
        }
        assert_eq!(bytes(&r["request"]), Some(sample()[1].request().to_vec()));

        let r = &rows[2];
        assert_eq!(r["api"], Field::Str("Produce".into()));
        assert_eq!(r["status"], Field::Str("unanswered".into()));
        assert_eq!(r["verdict"], Field::Str("pending".into()));
        assert_eq!(r["response"], Field::Null);
        assert_eq!(r["error_code"], Field::Null, "no response, no error code");
        // The request is cut short: the lint names it.
        assert!(!texts(&r["lint"]).is_empty(), "{:?}", r["lint"]);

        let r = &rows[3];
        assert_eq!(r["id"], Field::Long(4));
        assert_eq!(r["api"], Field::Null, "the request was not seen");
        assert_eq!(r["request"], Field::Null);
        assert_eq!(r["request_size"], Field::Null);
        assert_eq!(r["latency_us"], Field::Null);
        assert_eq!(
            bytes(&r["response"]),
            sample()[3].response().map(<[u8]>::to_vec)
        );
        assert_eq!(
            r["error_code"],
            Field::Short(0),
            "a body not read has no errors"
        );
    }

    /// Big frames fill row groups by bytes: never more than the limit is held.
    #[test]
    fn row_groups_are_written_when_their_bytes_reach_the_limit() {
        let mut w = ParquetExporter::with_limits(
            Vec::new(),
            RowGroupLimits {
                rows: usize::MAX,
                bytes: 100_000,
            },
        )
        .unwrap();
        let mut big = sample().remove(2);
        big.set_request(frame(&vec![7u8; 60_000]));
        for n in 1..=5 {
            big.id = n;
            w.exchange(&big).unwrap();
            // Two rows pass 100,000 bytes.
            assert_eq!(w.row_groups() as u64, n / 2, "after {n} rows");
        }
        let (groups, rows) = rows(w.finish().unwrap());
        assert_eq!(groups, 3);
        let ids: Vec<&Field> = rows.iter().map(|r| &r["id"]).collect();
        assert_eq!(
            ids,
            (1..=5)
                .map(Field::Long)
                .collect::<Vec<_>>()
                .iter()
                .collect::<Vec<_>>()
        );
        for r in &rows {
            assert_eq!(bytes(&r["request"]), Some(big.request().to_vec()));
        }
    }

    /// A file with no exchange is a valid, empty table.
    #[test]
    fn no_exchanges_make_an_empty_table() {
        let w = ParquetExporter::new(Vec::new()).unwrap();
        let (groups, rows) = rows(w.finish().unwrap());
        assert_eq!((groups, rows.len()), (0, 0));
    }
}
