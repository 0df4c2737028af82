//! How an exchange is written as text, shared by every view and writer: times ([`clock`],
//! [`Clock`]), the one-line form ([`line()`]) with its [`summarize`]d dissections, and the JSON
//! object with the whole decoded tree and its byte spans ([`json()`]). Reads only the exchange and
//! its dissections; the printers that write these lines out live with the binary's views.

use serde::Serialize;
use serde_json::json;

use crate::{Dissected, Exchange, FrameFault, Status, Verdict};
use chronik_protocol::batch::{self, Entry};
use chronik_protocol::dissect::RECORDS_NOT_EXPANDED;
use chronik_protocol::errors::error_name;
use chronik_protocol::lint::Finding;
use chronik_protocol::registry::Role;
use chronik_protocol::scan::{self, Scalar};
use chronik_protocol::tree::FRAME;
use chronik_protocol::{fid, lint, records, registry};
use chronik_protocol::{Dissection, Field, Limits, Value};
use smallvec::SmallVec;

/// Formats µs since the epoch as `HH:MM:SS.micros` (UTC).
pub fn clock(micros: i64) -> String {
    let mut text = String::with_capacity(15);
    push_clock(&mut text, micros);
    text
}

/// [`clock`], written at the end of `text`.
fn push_clock(text: &mut String, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let us = micros.rem_euclid(1_000_000);
    let day = secs.rem_euclid(86_400);
    // Digit by digit: this is written for every line `decode` prints.
    push_digits(text, day / 3600, 2);
    text.push(':');
    push_digits(text, (day / 60) % 60, 2);
    text.push(':');
    push_digits(text, day % 60, 2);
    text.push('.');
    push_digits(text, us, 6);
}

/// A client's address as `{}` writes it.
fn push_addr(text: &mut String, addr: std::net::SocketAddr) {
    match addr {
        std::net::SocketAddr::V4(a) => {
            // Every line has one: the octets from a table of their texts, at most
            // `255.255.255.255:` (16 bytes) gathered before they are pushed.
            let mut buf = [0u8; 16];
            let mut n = 0;
            for octet in a.ip().octets() {
                let (len, digits) = OCTETS[usize::from(octet)];
                buf[n..n + 3].copy_from_slice(&digits);
                buf[n + usize::from(len)] = b'.';
                n += usize::from(len) + 1;
            }
            buf[n - 1] = b':';
            text.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
            push_int(text, i64::from(a.port()));
        }
        std::net::SocketAddr::V6(_) => {
            use std::fmt::Write;
            let _ = write!(text, "{addr}");
        }
    }
}

/// The decimal text of each byte value (its length, then its digits).
const OCTETS: [(u8, [u8; 3]); 256] = {
    let mut table = [(0u8, [0u8; 3]); 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, u) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        table[i] = match i {
            0..=9 => (1, [b'0' + u, 0, 0]),
            10..=99 => (2, [b'0' + t, b'0' + u, 0]),
            _ => (3, [b'0' + h, b'0' + t, b'0' + u]),
        };
        i += 1;
    }
    table
};

/// A latency of `us` µs in ms as `{:.2}` (below 10 ms) or `{:.0}` writes `us / 1000.0`. Whole
/// numbers round alike either way, except at an exact half (`0.045`, `12.5`), where the
/// float's binary value decides: [`float_above`] tells which side of the half it lies. An
/// exact binary half (`0.125`), and negative values, go through the float.
fn push_latency(text: &mut String, us: i64) {
    use std::fmt::Write;
    // What to add before dividing by `unit` to round to it: half a unit, none at an exact half
    // the float lies below; `None` where only the float can tell.
    let add = |unit: i64| {
        if us % unit != unit / 2 {
            Some(unit / 2)
        } else {
            float_above(us).map(|above| if above { unit / 2 } else { 0 })
        }
    };
    match us {
        10_000.. => match add(1000) {
            Some(add) => push_int(text, (us + add) / 1000),
            None => _ = write!(text, "{:.0}", us as f64 / 1000.0),
        },
        0..10_000 => match add(10) {
            Some(add) => {
                let hundredths = (us + add) / 10;
                push_int(text, hundredths / 100);
                text.push('.');
                push_digits(text, hundredths % 100, 2);
            }
            None => _ = write!(text, "{:.2}", us as f64 / 1000.0),
        },
        _ => _ = write!(text, "{:.2}", us as f64 / 1000.0),
    }
    text.push_str("ms");
}

/// Whether `us as f64 / 1000.0` is above (`Some(true)`) or below `us / 1000` exactly, `None`
/// when it is exact (or `us` is negative or past 2^53). The f64 is `mantissa * 2^exp`; compared
/// with `us / 1000` in integers.
fn float_above(us: i64) -> Option<bool> {
    if !(1..1 << 53).contains(&us) {
        return None;
    }
    let bits = (us as f64 / 1000.0).to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
    // mantissa * 2^exp * 1000 against us; exp is below 0 here (the value is under 2^53).
    let shift = u32::try_from(-exp).ok().filter(|s| *s < 75)?;
    let (float, exact) = (mantissa * 1000, u128::from(us as u64) << shift);
    (float != exact).then_some(float > exact)
}

/// `value` (not negative) in `width` decimal digits, zero-padded, its higher digits dropped.
fn push_digits(text: &mut String, value: i64, width: u32) {
    let mut digits = [b'0'; 20];
    let width = (width as usize).min(digits.len());
    let mut v = value;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // Char by char: a handful of ASCII digits, no UTF-8 check.
    text.reserve(width);
    for &d in &digits[..width] {
        text.push(char::from(d));
    }
}

/// How a time is written: `utc` and `local` as `HH:MM:SS.micros`, `relative` as seconds since
/// the first exchange shown, `epoch` as seconds since 1970 (both with microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// HH:MM:SS.micros in UTC
    #[default]
    Utc,
    /// HH:MM:SS.micros in the local time zone (TZ)
    Local,
    /// seconds since the first exchange shown
    Relative,
    /// seconds since 1970-01-01 UTC
    Epoch,
}

impl TimeFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [TimeFormat; 4] = [
        TimeFormat::Utc,
        TimeFormat::Local,
        TimeFormat::Relative,
        TimeFormat::Epoch,
    ];

    /// The word used on the command line.
    pub fn word(self) -> &'static str {
        match self {
            TimeFormat::Utc => "utc",
            TimeFormat::Local => "local",
            TimeFormat::Relative => "relative",
            TimeFormat::Epoch => "epoch",
        }
    }
}

/// Formats times in one [`TimeFormat`]; `relative` counts from the first time it formats.
#[derive(Debug, Default)]
pub struct Clock {
    format: TimeFormat,
    first: std::sync::OnceLock<i64>,
}

impl Clock {
    /// A clock writing times in `format`.
    pub fn new(format: TimeFormat) -> Clock {
        Clock {
            format,
            first: std::sync::OnceLock::new(),
        }
    }

    /// `micros` (since the epoch) as text.
    pub fn format(&self, micros: i64) -> String {
        let mut text = String::new();
        self.write(&mut text, micros);
        text
    }

    /// [`Clock::format`], written at the end of `text`.
    pub fn write(&self, text: &mut String, micros: i64) {
        if self.format == TimeFormat::Utc {
            return push_clock(text, micros);
        }
        text.push_str(&self.format_other(micros));
    }

    /// [`Clock::format`] in the formats other than UTC.
    fn format_other(&self, micros: i64) -> String {
        let secs = |us: i64| {
            let sign = if us < 0 { "-" } else { "" };
            let us = us.unsigned_abs();
            format!("{sign}{}.{:06}", us / 1_000_000, us % 1_000_000)
        };
        match self.format {
            TimeFormat::Utc => clock(micros),
            TimeFormat::Local => {
                use chrono::TimeZone;
                match chrono::Local.timestamp_micros(micros).single() {
                    Some(t) => t.format("%H:%M:%S%.6f").to_string(),
                    None => clock(micros),
                }
            }
            TimeFormat::Relative => secs(micros - *self.first.get_or_init(|| micros)),
            TimeFormat::Epoch => secs(micros),
        }
    }
}

/// One line: time, connection, client, api and version, correlation id, latency, sizes, summary.
pub fn line(ex: &Exchange) -> String {
    line_dissected(ex, &ex.dissect(), &Clock::new(TimeFormat::Utc))
}

/// [`line()`] with its time written by `clock`. The line needs no record decoded (a record
/// set's records are counted from its batch headers), and for clean frames no tree at all: it
/// comes from [`summary_without_tree`] when both frames read cleanly, else from a dissection
/// with record sets left unexpanded.
pub fn line_with(ex: &Exchange, clock: &Clock) -> String {
    let mut line = String::with_capacity(160);
    push_line_with(&mut line, ex, clock);
    line
}

/// [`line_with`], written at the end of `line`.
pub fn push_line_with(line: &mut String, ex: &Exchange, clock: &Clock) {
    push_line_seeing(line, ex, clock, &mut |_, _| {});
}

/// [`push_line_with`], handing `seen` the request's values as the line's walk of it reads
/// them (for a reader that needs some of them too, without a walk of its own); true when the
/// line was made from that walk, so that `seen` was handed every value of the request, false
/// when it was made from a dissection (`seen` may then have been handed some of them).
pub fn push_line_seeing<'a>(
    line: &mut String,
    ex: &'a Exchange,
    clock: &Clock,
    seen: &mut dyn FnMut(registry::FieldId, Scalar<'a>),
) -> bool {
    push_line_or_dissected(line, ex, clock, seen, || {
        Box::new(ex.dissect_with(Limits::WITHOUT_RECORDS))
    })
}

/// [`line_with`] for a view that shares dissections: from [`summary_without_tree`] when both
/// frames read cleanly, else from the dissection `dissected` gives (full, or with record sets
/// not expanded as [`crate::Store::dissected`] shares it), asked only then.
pub fn line_or_dissected<D: std::ops::Deref<Target = Dissected>>(
    ex: &Exchange,
    clock: &Clock,
    dissected: impl FnOnce() -> D,
) -> String {
    let mut line = String::with_capacity(160);
    push_line_or_dissected(&mut line, ex, clock, &mut |_, _| {}, dissected);
    line
}

/// [`line_or_dissected`], written at the end of `line`, with the request's values handed to
/// `seen` as [`push_line_seeing`] says; true when the line was made from the walks.
fn push_line_or_dissected<'a, D: std::ops::Deref<Target = Dissected>>(
    line: &mut String,
    ex: &'a Exchange,
    clock: &Clock,
    seen: &mut dyn FnMut(registry::FieldId, Scalar<'a>),
    dissected: impl FnOnce() -> D,
) -> bool {
    let mut said = Said::default();
    match said_without_tree(ex, seen, &mut said) {
        Some(verdict) => {
            clock.write(line, ex.request_at);
            line_after_time(line, ex, |out| said.write(&verdict, out));
            true
        }
        None => {
            push_line_dissected(line, ex, &dissected(), clock);
            false
        }
    }
}

/// [`line_with`] from a dissection already made: full, or with record sets not expanded (as
/// [`crate::Store::dissected`] shares it), whose records are then counted from the batch
/// headers.
pub fn line_dissected(ex: &Exchange, d: &Dissected, clock: &Clock) -> String {
    let mut line = String::with_capacity(160);
    push_line_dissected(&mut line, ex, d, clock);
    line
}

/// [`line_dissected`], written at the end of `line`.
fn push_line_dissected(line: &mut String, ex: &Exchange, d: &Dissected, clock: &Clock) {
    clock.write(line, ex.request_at);
    line_after_time(line, ex, |out| summary_of(ex, d).write(&d.verdict, out));
}

/// What the summary of an exchange says, from its dissection.
fn summary_of<'a>(ex: &'a Exchange, d: &'a Dissected) -> Said<'a> {
    said_of_frames(d, Some(ex.request()))
}

/// The rest of [`line()`] after its time: `summary` writes the summary where it goes.
fn line_after_time(line: &mut String, ex: &Exchange, summary: impl FnOnce(&mut String)) {
    line.push_str(" conn=");
    push_int(line, ex.conn as i64);
    line.push(' ');
    push_addr(line, ex.peer());
    line.push_str(" client=");
    line.push_str(ex.client_id().unwrap_or("-"));
    line.push(' ');
    ex.push_api_label(line);
    line.push_str(" corr=");
    push_int(line, i64::from(ex.correlation_id));
    line.push(' ');
    // Request to response: `0.31ms` below 10 ms, `502ms` from there; `-` without a response.
    match ex.latency_micros() {
        Some(us) => push_latency(line, us),
        None => line.push('-'),
    }
    let size = |line: &mut String, frame: Option<&[u8]>| match frame {
        Some(f) => {
            push_int(line, f.len() as i64);
            line.push('B');
        }
        None => line.push('-'),
    };
    line.push_str(" req=");
    size(line, ex.request_seen().then_some(ex.request()));
    line.push_str(" resp=");
    size(line, ex.response());
    let before = line.len();
    line.push(' ');
    summary(line);
    if line.len() == before + 1 {
        line.truncate(before); // an empty summary
    }
    let mut tail = |text: &str| {
        if !text.is_empty() {
            line.push(' ');
            line.push_str(text);
        }
    };
    match &ex.status {
        Status::Answered => {}
        Status::NoResponse => tail("[no response: acks=0]"),
        Status::Unanswered => tail("[unanswered]"),
        Status::Malformed { error } => tail(&format!("[MALFORMED: {error}]")),
        Status::Refused { reason } => tail(&format!("[refused: {reason}]")),
    }
    for n in ex.notes() {
        tail(&format!("({n})"));
    }
    line.truncate(line.trim_end().len());
}

/// A short summary of an exchange from its dissections: topics and partitions named in the
/// request, and from the response the error codes that are not zero, produce base offsets and
/// throttle time; then what the [`Verdict`] finds wrong with either frame.
pub fn summarize(d: &Dissected) -> String {
    summarize_frames(d, None)
}

/// [`summarize`], given the request frame the dissection was made of, so that the records of
/// a record set it did not expand are counted too.
fn summarize_frames(d: &Dissected, request: Option<&[u8]>) -> String {
    let mut text = String::new();
    said_of_frames(d, request).write(&d.verdict, &mut text);
    text
}

/// What [`summarize_frames`] says, before it is written.
fn said_of_frames<'a>(d: &'a Dissected, request: Option<&'a [u8]>) -> Said<'a> {
    let mut said = Said::default();
    if let Some(req) = &d.request {
        said.request(req, request);
    }
    if let Some(resp) = d.response.as_ref().filter(|_| d.verdict.response_read) {
        said.response(resp);
    }
    said
}

/// What the summary says of an exchange's frames, gathered from their dissections or from
/// walks of clean frames (borrowing their text from either), and written by [`Said::write`].
#[derive(Debug, Default)]
struct Said<'a> {
    /// A bare SASL token, with its user when PLAIN names one.
    sasl: Option<Option<&'a str>>,
    /// The request's group ids, in order.
    groups: SmallVec<[&'a str; 1]>,
    /// The topics the request names, each once, in the order they first appear.
    topics: SmallVec<[&'a str; 2]>,
    records: usize,
    /// From a response that was read: Produce base offsets and the last `throttle_time_ms`.
    offsets: SmallVec<[i64; 2]>,
    throttle: Option<i64>,
}

impl<'a> Said<'a> {
    /// What the request names: a bare SASL token's user, groups, topics, records. One walk
    /// over the tree, comparing each field's registry role.
    fn request(&mut self, req: &'a Dissection, frame: Option<&[u8]>) {
        if req.root.find_id(fid!("sasl.token")).is_some() {
            let user = match req
                .root
                .find_id(fid!("sasl.plain.authcid"))
                .map(|f| &f.value)
            {
                Some(Value::Str(user)) => Some(user.as_str()),
                _ => None,
            };
            self.sasl = Some(user);
        }
        req.root
            .walk(0, &mut |f: &'a Field, _| match (f.role(), &f.value) {
                (Role::GroupId, Value::Str(s)) => self.groups.push(s),
                (Role::TopicName, Value::Str(s)) => self.topic(s),
                (Role::Record, _) => self.records += 1,
                _ if f.id == fid!("record_set.undecoded")
                    && f.note.as_deref() == Some(RECORDS_NOT_EXPANDED) =>
                {
                    let start = f.offset as usize;
                    let set =
                        frame.and_then(|fr| fr.get(start..start.saturating_add(f.len as usize)));
                    self.records += set.map_or(0, records_in_set);
                }
                _ => {}
            });
    }

    fn topic(&mut self, name: &'a str) {
        if !self.topics.contains(&name) {
            self.topics.push(name);
        }
    }

    /// What a response that was read says: base offsets and throttle time.
    fn response(&mut self, resp: &Dissection) {
        resp.root.walk(0, &mut |f, _| {
            if f.id == fid!("produce.response.responses.partition_responses.base_offset") {
                self.offsets.extend(f.as_int());
            }
        });
        self.throttle = throttle_time_ms(resp);
    }

    /// The summary, written at the end of `out`: what the request names, what the response
    /// says (or why it does not read), what is wrong with the request, and the lint's
    /// findings; parts separated by a space.
    fn write(&self, v: &Verdict, out: &mut String) {
        use std::fmt::Write;
        let start = out.len();
        let mut part = |out: &mut String| {
            if out.len() > start {
                out.push(' ');
            }
        };
        if let Some(user) = &self.sasl {
            part(out);
            out.push_str("bare SASL token (after SaslHandshake v0)");
            if let Some(user) = user {
                part(out);
                out.push_str("user=");
                out.push_str(user);
            }
        }
        for g in &self.groups {
            part(out);
            out.push_str("group=");
            out.push_str(g);
        }
        if !self.topics.is_empty() {
            part(out);
            out.push_str("topics=");
            for (i, t) in self.topics.iter().take(3).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(t);
            }
            if self.topics.len() > 3 {
                out.push('+');
                push_int(out, (self.topics.len() - 3) as i64);
            }
        }
        if self.records > 0 {
            part(out);
            out.push_str("records=");
            push_int(out, self.records as i64);
        }
        if v.response_read {
            self.write_response(v, out, &mut part);
        }
        if v.request_missing {
            part(out);
            out.push_str("request not in the capture");
        }
        match &v.request {
            Some(FrameFault::Undecodable(e)) => {
                part(out);
                let _ = write!(out, "request undecodable: {e}");
            }
            Some(FrameFault::TrailingBytes { len, .. }) => {
                part(out);
                let _ = write!(out, "request has {len} bytes after the spec's last field");
            }
            None => {}
        }
        if let Some(text) = lint_text(&v.findings) {
            part(out);
            out.push_str(&text);
        }
    }

    /// What the response says: base offsets, throttle time, and ok, its errors, or why it does
    /// not read.
    fn write_response(&self, v: &Verdict, out: &mut String, part: &mut impl FnMut(&mut String)) {
        use std::fmt::Write;
        let mut errors: Vec<&str> = Vec::new();
        for e in v.errors().map(error_name) {
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
        if !self.offsets.is_empty() {
            part(out);
            out.push_str("base_offset=");
            for (i, o) in self.offsets.iter().take(4).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_int(out, *o);
            }
        }
        if let Some(t) = self.throttle.filter(|t| *t != 0) {
            part(out);
            out.push_str("throttle=");
            push_int(out, t);
            out.push_str("ms");
        }
        match &v.response {
            Some(FrameFault::Undecodable(e)) => {
                part(out);
                let _ = write!(out, "response undecodable: {e}");
            }
            // The values above were read as the spec lays the response out; with bytes left
            // over they are not what the broker meant (a misplaced field, say).
            Some(FrameFault::TrailingBytes { len, .. }) => {
                part(out);
                let _ = write!(out, "MISREAD: {len} bytes left after the spec's last field");
            }
            None if errors.is_empty() => {
                part(out);
                out.push_str("ok");
            }
            None => {
                part(out);
                out.push_str("error=");
                out.push_str(&errors.join(","));
            }
        }
    }
}

/// The summary [`line_with`] gives, from walks of both frames that build no tree
/// ([`scan::scan_clean_request`] and `_response`); `None` unless the exchange is an answered
/// Kafka request whose frames both read cleanly in the spec's layout, as only a dissection can
/// say what is wrong with a frame (and where). Gives what the dissection would, byte for byte
/// (the tests compare the two on every API and version and on every capture at hand).
pub fn summary_without_tree(ex: &Exchange) -> Option<String> {
    let mut said = Said::default();
    let verdict = said_without_tree(ex, &mut |_, _| {}, &mut said)?;
    let mut text = String::new();
    said.write(&verdict, &mut text);
    Some(text)
}

/// Values a walk of an exchange's two frames may give and still stand for their dissection:
/// past this many a dissection (record sets not expanded) elides array elements, which a
/// summary read from it then misses.
pub(crate) const WALK_BUDGET: usize = Limits::WITHOUT_RECORDS.max_fields / 4;

/// Both frames of an answered Kafka exchange (request seen), the only ones read by walks that
/// build no tree in place of a dissection.
pub(crate) fn answered_frames(ex: &Exchange) -> Option<(&[u8], &[u8])> {
    let response = ex.response()?;
    if ex.framing != crate::Framing::Kafka || !ex.request_seen() || ex.status != Status::Answered {
        return None;
    }
    Some((ex.request(), response))
}

/// What [`summary_without_tree`] says, before it is written: into `said` (filled in place, as
/// it is large to move), and the verdict returned; `seen` is handed each of the request's
/// values as they are read.
fn said_without_tree<'a>(
    ex: &'a Exchange,
    seen: &mut dyn FnMut(registry::FieldId, Scalar<'a>),
    said: &mut Said<'a>,
) -> Option<Verdict> {
    let (request, response) = answered_frames(ex)?;
    // Each value's entry, as `registry::role` reads it, from the catalog taken once.
    let catalog = registry::catalog();
    let entry = |id: registry::FieldId| &catalog.entries[id.0 as usize];
    let is_records = |id| matches!(entry(id).kind, chronik_protocol::schema::FieldType::Records);
    let (mut values, mut utf8) = (0usize, true);
    let (mut sets, mut codes) = (SmallVec::<[_; 2]>::new(), SmallVec::<[_; 4]>::new());
    scan::scan_clean_request(request, &mut |id, v| {
        values += 1;
        seen(id, v);
        match (entry(id).role, v) {
            (Role::GroupId, Scalar::Str(s)) => match std::str::from_utf8(s) {
                Ok(s) => said.groups.push(s),
                Err(_) => utf8 = false,
            },
            (Role::TopicName, Scalar::Str(s)) => match std::str::from_utf8(s) {
                Ok(s) => said.topic(s),
                Err(_) => utf8 = false,
            },
            (Role::ErrorCode, Scalar::Int(c)) => codes.push(c),
            (_, Scalar::Data { start, len }) if is_records(id) && len > 0 => {
                sets.push((start, start + len));
            }
            _ => {}
        }
    })
    .ok()?;
    // The lint's check of the record sets counts their batches' records on the way; a set
    // holding legacy messages is expanded to count them.
    let checked = lint::check_clean(request, lint::Side::Request, ex.api_key, &sets, &codes)?;
    said.records = checked.records.unwrap_or_else(|| {
        (sets.iter())
            .map(|(s, e)| records_in_set(&request[*s..*e]))
            .sum()
    });
    let mut findings = checked.findings;
    let (mut response_sets, mut error_codes) =
        (SmallVec::<[_; 2]>::new(), SmallVec::<[_; 4]>::new());
    scan::scan_clean_response(response, ex.api_key, ex.api_version, &mut |id, v| {
        values += 1;
        match (entry(id).role, v) {
            (Role::ErrorCode, Scalar::Int(c)) => error_codes.push(c),
            (Role::ThrottleTime, Scalar::Int(t)) => said.throttle = Some(t),
            (_, Scalar::Int(o))
                if id == fid!("produce.response.responses.partition_responses.base_offset") =>
            {
                said.offsets.push(o)
            }
            (_, Scalar::Data { start, len }) if is_records(id) && len > 0 => {
                response_sets.push((start, start + len));
            }
            _ => {}
        }
    })
    .ok()?;
    if !utf8 || values > WALK_BUDGET {
        return None;
    }
    findings.extend(
        lint::check_clean(
            response,
            lint::Side::Response,
            ex.api_key,
            &response_sets,
            &error_codes,
        )?
        .findings,
    );
    crate::lint::correlation(ex, response, &mut findings);
    findings.extend(ex.lint().iter().cloned());
    findings.sort_by_key(|f| (f.side == lint::Side::Response, f.start, f.end));
    let mut verdict = Verdict {
        request_missing: false,
        request: None,
        response_read: true,
        response: None,
        error_codes: error_codes
            .iter()
            .filter_map(|c| i16::try_from(*c).ok())
            .collect(),
        severity: crate::verdict::Severity::Ok,
        findings,
    };
    // Answered, both frames clean: an error code is the only trouble there can be.
    if verdict.trouble() {
        verdict.severity = crate::verdict::Severity::Error;
    }
    Some(verdict)
}

/// The lint's findings in a line: `[lint error field-misplaced: throttle_time_ms sent before
/// responses]`, the most severe first, at most two, then how many more.
pub fn lint_text(findings: &[Finding]) -> Option<String> {
    const SHOWN: usize = 2;
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.level));
    let first = sorted.first()?;
    let mut text = format!("[lint {}", first.level);
    for (i, f) in sorted.iter().take(SHOWN).enumerate() {
        text.push_str(if i == 0 { " " } else { "; " });
        text.push_str(&format!("{}: {}", f.code, f.message));
    }
    if sorted.len() > SHOWN {
        text.push_str(&format!("; +{} more", sorted.len() - SHOWN));
    }
    text.push(']');
    Some(text)
}

/// The topics a request names, each once, in the order they first appear.
pub fn request_topics(req: &Dissection) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    req.root.walk(0, &mut |f, _| {
        if let (Role::TopicName, Value::Str(s)) = (f.role(), &f.value) {
            if !topics.contains(s) {
                topics.push(s.clone());
            }
        }
    });
    topics
}

/// The records of a record set a dissection did not expand, as its full dissection counts
/// them: from the headers of magic-2 batches; a set holding legacy messages is expanded to
/// count them (a compressed one holds messages of its own).
fn records_in_set(set: &[u8]) -> usize {
    // One pass over the entries, counting from the batch headers; legacy messages (rare)
    // send the set to be expanded.
    let mut n = 0;
    for e in batch::split(set) {
        match e {
            Entry::Batch { start, end } => {
                n += set
                    .get(start..end)
                    .and_then(batch::records_count)
                    .map_or(0, |count| usize::try_from(count).unwrap_or(0));
            }
            Entry::Legacy { .. } => return legacy_records(set),
            _ => {}
        }
    }
    n
}

/// The records of a record set holding legacy messages, counted from its expansion.
fn legacy_records(set: &[u8]) -> usize {
    let (mut buffers, mut fields) = (Vec::new(), Vec::new());
    records::dissect_record_set(set, 0, set.len(), FRAME, &mut buffers, &mut fields);
    let mut n = 0;
    for f in &fields {
        f.walk(0, &mut |f, _| {
            if f.role() == Role::Record {
                n += 1;
            }
        });
    }
    n
}

/// The response's `throttle_time_ms` (the last one, should it have several); none when it has
/// no such field.
pub fn throttle_time_ms(resp: &Dissection) -> Option<i64> {
    let mut throttle = None;
    resp.root.walk(0, &mut |f, _| {
        if f.role() == Role::ThrottleTime {
            throttle = f.as_int();
        }
    });
    throttle
}

/// One frame in JSON: its bytes in hex, its dissected tree, and where decoding stopped (null
/// when it did not); keys in alphabetical order, as `serde_json`'s maps keep them.
struct FrameJson<'a> {
    d: &'a Dissection,
    frame: &'a [u8],
}

impl FrameJson<'_> {
    /// The object, written straight into `out`.
    fn write(&self, out: &mut String) {
        out.push_str("{\"error\":");
        // Through a value, whose keys are sorted as everywhere else in the line (the error's
        // own order is its fields').
        push_serialized(
            out,
            &serde_json::to_value(&self.d.error).unwrap_or_default(),
        );
        out.push_str(",\"frame_hex\":\"");
        push_hex(out, self.frame);
        out.push_str("\",\"tree\":");
        FieldJson(&self.d.root).write(out);
        out.push('}');
    }
}

/// One field in JSON with its children: registry name, byte offset and length (in buffer
/// `buffer` when not the frame itself: a decompressed record set), and its value. Keys in
/// alphabetical order.
struct FieldJson<'a>(&'a Field);

impl FieldJson<'_> {
    /// The object, written straight into `out`: names (ASCII letters, digits, `_` and `.`, as the registry has them), numbers and
    /// spans need no escaping, the rest goes through serde_json.
    fn write(&self, out: &mut String) {
        let f = self.0;
        out.push('{');
        if f.buffer != 0 {
            out.push_str("\"buffer\":");
            push_int(out, i64::from(f.buffer));
            out.push(',');
        }
        if let Value::Bytes { start, len } = &f.value {
            out.push_str("\"bytes\":{\"len\":");
            push_int(out, i64::from(*len));
            out.push_str(",\"start\":");
            push_int(out, i64::from(*start));
            out.push_str("},");
        }
        if !f.children.is_empty() {
            out.push_str("\"children\":[");
            for (i, c) in f.children.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                FieldJson(c).write(out);
            }
            out.push_str("],");
        }
        if let Value::Element(i) = &f.value {
            out.push_str("\"index\":");
            push_int(out, i64::from(*i));
            out.push(',');
        }
        out.push_str("\"len\":");
        push_int(out, i64::from(f.len));
        out.push_str(",\"name\":\"");
        out.push_str(f.name());
        out.push('"');
        if let Some(n) = &f.note {
            out.push_str(",\"note\":");
            push_json_str(out, n);
        }
        out.push_str(",\"offset\":");
        push_int(out, i64::from(f.offset));
        match &f.value {
            Value::Group | Value::Element(_) | Value::Bytes { .. } => {}
            Value::Int(i) => {
                out.push_str(",\"value\":");
                push_int(out, *i);
            }
            Value::Float(x) => {
                out.push_str(",\"value\":");
                push_serialized(out, &serde_json::Number::from_f64(*x));
            }
            Value::Bool(b) => out.push_str(if *b {
                ",\"value\":true"
            } else {
                ",\"value\":false"
            }),
            Value::Str(v) | Value::Uuid(v) => {
                out.push_str(",\"value\":");
                push_json_str(out, v);
            }
            Value::Null => out.push_str(",\"value\":null"),
        }
        out.push('}');
    }
}

/// An integer in decimal, as serde_json and `{}` write it (without the formatting machinery:
/// every line and JSON object has several).
fn push_int(out: &mut String, v: i64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// A JSON string: as it stands when nothing in it needs escaping (as serde_json decides:
/// control characters, `"` and `\\`), else serde_json's escaping.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        push_serialized(out, s);
    }
}

/// A value as serde_json writes it.
fn push_serialized<T: Serialize + ?Sized>(out: &mut String, v: &T) {
    match serde_json::to_string(v) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("null"),
    }
}

/// Bytes as lower-case hex, two digits each.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    push_hex(&mut s, b);
    s
}

/// [`hex`], appended to `out`.
fn push_hex(out: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2);
    for x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 15)] as char);
    }
}

/// An exchange as one JSON object: its metadata, its lint findings, and each frame's hex, tree
/// and decode error; written as text by [`json_line`].
struct ExchangeJson<'a> {
    ex: &'a Exchange,
    req: Option<Dissection>,
    resp: Option<Dissection>,
}

impl<'a> ExchangeJson<'a> {
    fn new(ex: &'a Exchange) -> Self {
        ExchangeJson {
            ex,
            req: ex.dissect_request(),
            resp: ex.dissect_response(),
        }
    }
}

/// One entry of [`ExchangeJson`]'s object.
enum JsonEntry<'a> {
    Value(serde_json::Value),
    Frame(FrameJson<'a>),
}

impl ExchangeJson<'_> {
    /// The object's entries, sorted by key: the exchange's metadata as serde makes it, the
    /// API name, latency and lint, and each frame.
    fn entries(&self) -> Result<Vec<(String, JsonEntry<'_>)>, serde_json::Error> {
        let ex = self.ex;
        let serde_json::Value::Object(meta) = serde_json::to_value(ex)? else {
            return Err(serde::ser::Error::custom("an exchange is a JSON object"));
        };
        let mut entries: Vec<(String, JsonEntry<'_>)> = meta
            .into_iter()
            .map(|(k, v)| (k, JsonEntry::Value(v)))
            .collect();
        entries.push(("api_name".into(), JsonEntry::Value(json!(api_name(ex)))));
        entries.push((
            "latency_us".into(),
            JsonEntry::Value(json!(ex.latency_micros())),
        ));
        let lint = crate::lint::findings(ex, self.req.as_ref(), self.resp.as_ref());
        entries.push(("lint".into(), JsonEntry::Value(json!(lint))));
        let request = match &self.req {
            Some(d) => JsonEntry::Frame(FrameJson {
                d,
                frame: ex.request(),
            }),
            None => JsonEntry::Value(serde_json::Value::Null),
        };
        entries.push(("request".into(), request));
        if let (Some(d), Some(frame)) = (&self.resp, ex.response()) {
            entries.push(("response".into(), JsonEntry::Frame(FrameJson { d, frame })));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// The object, written straight into `out` (the frames by [`FrameJson::write`]).
    fn write(&self, out: &mut String) -> Result<(), serde_json::Error> {
        let entries = self.entries()?;
        out.push('{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, k);
            out.push(':');
            match v {
                JsonEntry::Value(v) => push_serialized(out, v),
                JsonEntry::Frame(f) => f.write(out),
            }
        }
        out.push('}');
        Ok(())
    }
}

/// The API's name (`Produce`); none for a response whose request was not seen, unless the
/// capture kept the request's header.
pub fn api_name(ex: &Exchange) -> Option<String> {
    (ex.api_key >= 0 || ex.request_seen()).then(|| registry::api_name(ex.api_key))
}

/// One JSON object: the exchange's metadata, and each frame's hex, tree and decode error
/// ([`json_line`]'s text, read back).
pub fn json(ex: &Exchange) -> serde_json::Value {
    serde_json::from_str(&json_line(ex)).unwrap_or_else(|_| json!({}))
}

/// The exchange as one line of JSON, written straight (no value tree in between; the frames'
/// trees by hand, their names and hex needing no escaping); keys in alphabetical order.
pub fn json_line(ex: &Exchange) -> String {
    let mut out = String::with_capacity(8 * ex.size() + 512);
    match ExchangeJson::new(ex).write(&mut out) {
        Ok(()) => out,
        Err(_) => "{}".into(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::Compression;

    use super::*;
    use chronik_protocol::test_frames::{record_batch_with, request_frame};

    #[test]
    fn clock_writes_the_time_of_day_in_utc_with_microseconds() {
        let cases = [
            (0, "00:00:00.000000"),
            (1_796_032_800_000_001, "10:00:00.000001"),
            (86_399_999_999, "23:59:59.999999"),
            (86_400_000_000 + 3_723_004_005, "01:02:03.004005"),
            // Before 1970: the time of day of the day it falls in.
            (-1, "23:59:59.999999"),
            (-86_400_000_000 - 3_600_000_000, "23:00:00.000000"),
        ];
        for (micros, text) in cases {
            assert_eq!(clock(micros), text, "{micros}");
        }
    }

    /// The numbers of a line, written without the formatting machinery, read as `format!`
    /// writes them: latencies (with every exact half, where the float's binary value decides
    /// the rounding), integers and IPv4 and IPv6 addresses.
    #[test]
    fn a_lines_numbers_are_what_format_writes() {
        let mut latencies: Vec<i64> = (-1100..25_000)
            .chain((0..20_000).map(|k| k * 1000 + 500))
            .collect();
        latencies.extend([
            99_500,
            100_500,
            1_234_567,
            i64::from(i32::MAX),
            -15_000,
            -10_500,
        ]);
        for us in latencies {
            let mut text = String::new();
            push_latency(&mut text, us);
            let float = us as f64 / 1000.0;
            let expected = if us >= 10_000 {
                format!("{float:.0}ms")
            } else {
                format!("{float:.2}ms")
            };
            assert_eq!(text, expected, "{us} µs");
        }
        for v in [0, 7, -7, 10, 99, 1_000_000, i64::MAX, i64::MIN, -1] {
            let mut text = String::from("x");
            push_int(&mut text, v);
            assert_eq!(text, format!("x{v}"));
        }
        for addr in [
            "127.0.0.1:54054",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.4:9092",
            "[::1]:9092",
            "[fd00::beef:2]:1",
        ] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let mut text = String::new();
            push_addr(&mut text, addr);
            assert_eq!(text, addr.to_string());
        }
        // Every octet value in every place.
        for v in 0..=255u8 {
            for place in 0..4 {
                let mut octets = [1, 22, 133, 4];
                octets[place] = v;
                let addr = std::net::SocketAddr::from((octets, 9092 + u16::from(v)));
                let mut text = String::new();
                push_addr(&mut text, addr);
                assert_eq!(text, addr.to_string());
            }
        }
    }

    /// A magic-2 batch of `n` records, compressed with `compression`.
    fn batch(n: usize, compression: Compression) -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'v'; 20 + i]).collect();
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        record_batch_with(&values, compression).to_vec()
    }

    /// A legacy magic-1 message (no key) holding `value`, `attributes` naming its codec.
    fn message(offset: i64, attributes: u8, value: &[u8]) -> Vec<u8> {
        let mut body = vec![1u8, attributes];
        body.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&(value.len() as i32).to_be_bytes());
        body.extend_from_slice(value);
        let mut m = offset.to_be_bytes().to_vec();
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(&0u32.to_be_bytes()); // CRC, unchecked here
        m.extend_from_slice(&body);
        m
    }

    fn produce(version: i16, set: Vec<u8>) -> Exchange {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(set)))])]);
        let peer = "127.0.0.1:1".parse().unwrap();
        let mut ex = Exchange::new(1, crate::Endpoints::of(peer), 0, Status::NoResponse)
            .with_frames(request_frame(0, version, 1, Some("app"), &req), None);
        ex.api_key = 0;
        ex.api_version = version;
        ex.correlation_id = 1;
        ex
    }

    /// An answered exchange of `request` and `response` (frames as sent).
    fn answered(request: Vec<u8>, response: Vec<u8>) -> Exchange {
        let peer = "127.0.0.1:1".parse().unwrap();
        let header = chronik_protocol::dissect::peek_request_header(&request[4..]).unwrap();
        let mut ex = Exchange::new(1, crate::Endpoints::of(peer), 0, Status::Answered)
            .with_frames(request, Some(response))
            .with_response_at(Some(250));
        (ex.api_key, ex.api_version, ex.correlation_id) = header;
        ex
    }

    /// The summary of the tree, as the line writes it when the walk does not give one.
    fn from_the_tree(ex: &Exchange) -> String {
        summarize_frames(
            &ex.dissect_with(Limits::WITHOUT_RECORDS),
            Some(ex.request()),
        )
    }

    /// Every API and version with the encoder's defaults (empty arrays, zeros, empty
    /// strings), both frames: the walk's summary is the tree's wherever it gives one, and it
    /// gives one for nearly all.
    #[test]
    fn the_summary_without_a_tree_is_the_trees_on_every_api_and_version() {
        let (mut compared, mut declined) = (0, Vec::new());
        for (key, api) in &registry::catalog().apis {
            for version in api.versions.min..=api.versions.max {
                use chronik_protocol::encode::{request, response, Input};
                use chronik_protocol::test_frames::filled;
                let empty = || Input::Map(Default::default());
                let bodies = [
                    (false, empty(), empty()),
                    (
                        true,
                        filled(&api.request, version),
                        filled(&api.response, version),
                    ),
                ];
                for (full, req, resp) in bodies {
                    let req = request(*key, version, 7, Some("c"), &req);
                    let (Ok(req), Ok(resp)) = (req, response(*key, version, 7, &resp)) else {
                        continue;
                    };
                    let ex = answered(req, resp);
                    let what = format!("{} v{version} filled {full}", api.name);
                    match summary_without_tree(&ex) {
                        Some(fast) => {
                            assert_eq!(fast, from_the_tree(&ex), "{what}");
                            compared += 1;
                        }
                        None => declined.push(what),
                    }
                }
            }
        }
        assert!(
            compared >= 200,
            "only {compared} compared; declined {declined:?}"
        );
        assert!(
            declined.iter().all(|d| d.starts_with("ApiVersions")),
            "declined {declined:?}"
        );
    }

    /// Produce with batches (one with a bad CRC), error codes and a throttle time; a
    /// correlation id the response does not echo; a response with the throttle time first (not
    /// clean: only the tree explains it); a request cut short and one with a null where none
    /// is allowed: the line is the tree's every time.
    #[test]
    fn the_summary_without_a_tree_agrees_or_leaves_it_to_the_tree() {
        use chronik_protocol::encode::{self, Input};
        let map = |fields: Vec<(&str, Input)>| {
            Input::Map(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        };
        let mut bad_crc = batch(2, Compression::None);
        bad_crc[20] ^= 0xff;
        let sets = [
            [batch(3, Compression::None), batch(2, Compression::Gzip)].concat(),
            bad_crc,
            [message(0, 0, b"a"), message(1, 0, b"bc")].concat(),
        ];
        let partition = |i: usize| {
            map(vec![
                ("index", Input::Int(i as i64)),
                ("records", Input::Bytes(sets[i % sets.len()].clone())),
            ])
        };
        let topic = |name: &str| {
            map(vec![
                ("name", Input::Str(name.into())),
                (
                    "partition_data",
                    Input::List((0..3).map(partition).collect()),
                ),
            ])
        };
        let request = |version: i16, corr: i32| {
            let body = map(vec![
                ("acks", Input::Int(-1)),
                ("timeout_ms", Input::Int(1000)),
                (
                    "topic_data",
                    Input::List(vec![topic("a"), topic("b"), topic("a")]),
                ),
            ]);
            encode::request(0, version, corr, Some("c"), &body).unwrap()
        };
        let response = |version: i16, corr: i32, error: i64, throttle: i64| {
            let part = |i: i64| {
                map(vec![
                    ("index", Input::Int(i)),
                    ("error_code", Input::Int(if i == 1 { error } else { 0 })),
                    ("base_offset", Input::Int(100 + i)),
                ])
            };
            let topic = |name: &str| {
                map(vec![
                    ("name", Input::Str(name.into())),
                    (
                        "partition_responses",
                        Input::List((0..3).map(part).collect()),
                    ),
                ])
            };
            let body = map(vec![
                ("responses", Input::List(vec![topic("a"), topic("b")])),
                ("throttle_time_ms", Input::Int(throttle)),
            ]);
            encode::response(0, version, corr, &body).unwrap()
        };
        let mut fast = 0;
        for version in 3..=9 {
            for (error, throttle, echo) in [(0, 0, 5), (6, 12, 5), (3, 0, 6), (-1, 0, 5)] {
                let ex = answered(
                    request(version, 5),
                    response(version, echo, error, throttle),
                );
                let tree = from_the_tree(&ex);
                if let Some(s) = summary_without_tree(&ex) {
                    assert_eq!(s, tree, "v{version} error {error} throttle {throttle}");
                    fast += 1;
                }
            }
            // The throttle time moved to the front: bytes left over, a finding only the tree
            // (and the layouts it tries) can name.
            let mut moved = response(version, 5, 0, 7);
            let throttle: Vec<u8> = moved.drain(moved.len() - 4..).collect();
            let at = 8 + usize::from(version >= 9);
            moved.splice(at..at, throttle);
            let ex = answered(request(version, 5), moved);
            assert_eq!(summary_without_tree(&ex), None, "v{version} moved");
            // Cut short, and a null topic name where the version allows none.
            let mut cut = request(version, 5);
            cut.truncate(cut.len() - 3);
            let ex = answered(cut, response(version, 5, 0, 0));
            assert_eq!(summary_without_tree(&ex), None, "v{version} cut");
        }
        assert_eq!(fast, 7 * 4, "every clean exchange took the walk");
        let mut null_name = request(3, 5);
        let at = null_name
            .windows(3)
            .position(|w| w == [0, 1, b'a'])
            .unwrap();
        null_name.splice(at..at + 3, [0xff, 0xff]);
        let len = (null_name.len() - 4) as i32;
        null_name[..4].copy_from_slice(&len.to_be_bytes());
        let ex = answered(null_name, response(3, 5, 0, 0));
        assert_eq!(summary_without_tree(&ex), None, "a null topic name");
        assert!(
            from_the_tree(&ex).contains("[lint"),
            "{}",
            from_the_tree(&ex)
        );
    }

    /// The line from a dissection that leaves record sets unexpanded (what the store shares
    /// with the live views) is the line of the full dissection, records counted alike.
    #[test]
    fn a_line_without_expanded_records_reads_as_the_full_one() {
        let two = [batch(3, Compression::None), batch(5, Compression::None)].concat();
        let legacy = [message(0, 0, b"a"), message(1, 0, b"bc")].concat();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &legacy).expect("gzip");
        let wrapped = message(1, 1, &gz.finish().expect("gzip"));
        let cases = [
            (7, batch(1, Compression::None), "records=1"),
            (9, two, "records=8"),
            (7, batch(4, Compression::Gzip), "records=4"),
            (2, legacy, "records=2"),
            (2, wrapped, "records="),
            (7, vec![0; 30], "topics=t"),
        ];
        let clock = Clock::new(TimeFormat::Utc);
        for (version, set, expect) in cases {
            let ex = produce(version, set);
            let full = line(&ex);
            assert!(full.contains(expect), "{full}");
            let shared = line_dissected(&ex, &ex.dissect_with(Limits::WITHOUT_RECORDS), &clock);
            assert_eq!(shared, full);
            // Answered, the walks count the records as the tree does (the lint's check of the
            // batches counts them; legacy messages are expanded).
            let empty = chronik_protocol::encode::Input::Map(Default::default());
            let response = chronik_protocol::encode::response(0, version, 1, &empty).unwrap();
            let ex = answered(ex.request().to_vec(), response);
            let walked = summary_without_tree(&ex).expect("the walks read it");
            assert_eq!(walked, from_the_tree(&ex));
            assert!(walked.contains(expect), "{walked}");
        }
    }

    #[test]
    fn integers_are_written_as_serde_json_writes_them() {
        for v in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            4096,
            i64::from(u32::MAX),
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = String::new();
            push_int(&mut out, v);
            assert_eq!(out, serde_json::to_string(&v).unwrap());
        }
    }

    /// The JSON line, written as it is serialized, is the JSON value's text, and its trees
    /// list every field of the full dissection in order with its name, span and value.
    #[test]
    fn the_json_line_is_the_json_value_with_every_field() {
        fn fields(f: &Field, out: &mut Vec<serde_json::Value>) {
            let mut v = json!({ "name": f.name(), "offset": f.offset, "len": f.len });
            match &f.value {
                Value::Int(i) => v["value"] = json!(i),
                Value::Bool(b) => v["value"] = json!(b),
                Value::Str(s) | Value::Uuid(s) => v["value"] = json!(s),
                Value::Bytes { start, len } => v["bytes"] = json!({ "start": start, "len": len }),
                Value::Element(i) => v["index"] = json!(i),
                _ => {}
            }
            if let Some(n) = &f.note {
                v["note"] = json!(n);
            }
            if f.buffer != 0 {
                v["buffer"] = json!(f.buffer);
            }
            out.push(v);
            f.children.iter().for_each(|c| fields(c, out));
        }
        fn listed(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
            let mut f = json!({ "name": v["name"], "offset": v["offset"], "len": v["len"] });
            for key in ["value", "bytes", "index", "note", "buffer"] {
                if !v[key].is_null() {
                    f[key] = v[key].clone();
                }
            }
            out.push(f);
            for c in v["children"].as_array().into_iter().flatten() {
                listed(c, out);
            }
        }
        for (version, set) in [
            (7, batch(3, Compression::Gzip)),
            (2, [message(0, 0, b"a"), message(1, 0, b"bc")].concat()),
            (9, vec![0; 30]),
        ] {
            let ex = produce(version, set);
            let text = json_line(&ex);
            assert_eq!(text, json(&ex).to_string());
            let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
            let d = ex.dissect_request().expect("a request");
            let (mut want, mut got) = (Vec::new(), Vec::new());
            fields(&d.root, &mut want);
            listed(&v["request"]["tree"], &mut got);
            assert_eq!(got, want);
            assert_eq!(v["request"]["frame_hex"], json!(hex(ex.request())));
            assert_eq!(v["api_name"], "Produce");
            assert!(v.get("response").is_none());
        }
        // Strings that need escaping (a client id, a note, a string field) and a response that
        // does not decode: still the value's text.
        let mut ex = produce(9, vec![0; 30]);
        ex.set_client_id(Some(std::sync::Arc::new("q\"\\\n\u{1}é".into())));
        ex.push_note("note \"quoted\"\tand tabbed".into());
        ex.set_response(Some(vec![0, 0, 0, 6, 0, 0, 0, 1, 0xff, 0xff]));
        let text = json_line(&ex);
        assert_eq!(text, json(&ex).to_string());
        assert!(
            text.contains("\\\"quoted\\\"") && text.contains("\\u0001"),
            "{text}"
        );
    }
}
