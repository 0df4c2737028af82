//! The display filter language: a one-line expression, like Wireshark's display filters, that
//! keeps or hides an exchange (a request and its response).
//!
//! # Language
//!
//! - A **comparison** is `NAME OP VALUE`, with `OP` one of `==` `!=` `<` `<=` `>` `>=`, `~`
//!   (contains, case-insensitive) and `!~` (does not contain), or the words `eq ne lt le gt ge
//!   contains`.
//! - A **bare name** is a test of presence: true when a field of that registry name is in the
//!   request or the response, or, for a built-in, when its value is known (see below).
//! - `&&`/`and`, `||`/`or`, `!`/`not` and parentheses combine tests; `not` binds tightest, then
//!   `and`, then `or`. Keywords and built-in names are case-insensitive.
//! - **Values**: integers (`-1`, `0x1f`), durations (`250us`, `50ms`, `1.5s`), sizes (`512`,
//!   `10kB`, `1MiB`), quoted strings (`"rd kafka"`, with `\"` and `\\` escapes) and bare words
//!   (`Produce`, `UNKNOWN_TOPIC_OR_PARTITION`, `front`, `null`).
//!
//! # Built-in names
//!
//! | name | value | bare name is true when |
//! |---|---|---|
//! | `api` | API key; compares with a number or a name (`Produce`, `api_versions`); `~` on the name | always |
//! | `version`, `conn`, `id`, `corr` | API version, connection id, store sequence number, correlation id | always |
//! | `client` | client id from the request header (`null` when absent) | a client id was sent |
//! | `peer` | client address `ip:port` | always |
//! | `software` | client software `name version` from the stall detector (`null` when unknown) | it is known |
//! | `health` | `healthy` `retrying` `stalled` `disconnecting` (`null` when unknown) | it is known |
//! | `latency` | request to response; a bare number is milliseconds | there is a response |
//! | `size`, `request.size`, `response.size` | frame bytes, size prefixes included | always; `response.size`: there is a response |
//! | `status` | `answered` `no_response` `unanswered` `malformed` `refused` | always |
//! | `malformed` | boolean: status is malformed or a dissection stopped with an error | it is true |
//! | `placement` | `spec` `front` `omit`: how a ProduceResponse placed `throttle_time_ms` | the broker recorded one |
//! | `error` | every `error_code` field of the response; a number or an error name; `~` on the name | some error code is not 0 |
//! | `throttle` | every `throttle_time_ms` field of the response | such a field is present |
//!
//! Missing values never satisfy a comparison, not even `!=`: `latency` and `response.size`
//! without a response, `placement` outside ProduceResponses, and `error` and `throttle` when there
//! is no response. A response without any `error_code` field counts as error 0 (`NONE`), so
//! `error == 0` is true for it and `error != 0` false: most APIs without error codes have nothing
//! to report, and this keeps `error` usable as "the response reported a problem".
//!
//! # Registry names
//!
//! Any other name must be a dotted name of the field registry
//! ([`chronik_protocol::registry`]), e.g. `produce.response.throttle_time_ms > 0` or
//! `kafka.client_id ~ "rd"`. As in Wireshark, a comparison is true when **any** field of that name
//! in the request or the response satisfies it, so `x != 1` means "some x is not 1", not
//! `!(x == 1)`. Integers compare numerically (fields named `error_code` and `api_key` also
//! accept names); strings and UUIDs compare exactly with `==` and case-insensitively with `~`;
//! bytes compare with their lossy UTF-8 text or, for a hex value such as `"00ff"` or
//! `"00:ff"`, with their bytes (a record set decoded into batches: the bytes it spans); booleans
//! compare with `true`/`false`; `null` matches only null fields (and `!= null` every other one);
//! a struct or an array of structs can only be tested bare or against `null`, while an array of
//! integers or strings compares element by element.
//!
//! A comparison that cannot be true by type (`latency ~ "x"`, `version == "3"`, `peer > 5`) is
//! an error when the filter is parsed, as is an unknown name (with the closest known name as a
//! suggestion), an unknown API or error name, and a word that is not one of an enumeration's.
//!
//! # Evaluation
//!
//! Built-ins other than `error`, `throttle` and `malformed` are read from the
//! [`Exchange`](crate::Exchange) alone ([`Filter::needs_dissection`] says whether a
//! filter uses anything else). When a filter needs a dissection that the [`Subject`] does not
//! carry, [`Filter::matches`] dissects the frames itself, once per call.

mod ast;
mod builtins;
mod eval;
mod lexer;
mod literal;
mod parse;
mod suggest;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

pub use builtins::BUILTINS;

/// One name whose values are printed, as `decode --fields` (tshark's `-T fields -e`) does: a
/// built-in or a registry name, checked as the filter checks names.
#[derive(Clone, Debug)]
pub struct Column {
    name: String,
    target: ast::Target,
}

impl Column {
    /// The column of a name; an unknown name is refused with the closest known names.
    pub fn parse(name: &str) -> Result<Column, FilterError> {
        let (target, _) = parse::resolve(name.trim(), 0)?;
        Ok(Column {
            name: name.trim().to_string(),
            target,
        })
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every value of the name in the exchange, as text (see the module docs of `decode`).
    pub fn values(&self, s: &Subject<'_>) -> Vec<String> {
        eval::Ctx::new(s).texts(&self.target)
    }
}

/// A hint for a registry name that is not registered (`did you mean `...`?`), for what takes
/// registry names outside a filter (`replay --ignore`); the filter's own messages use the same.
pub fn registry_name_hint(typed: &str) -> Option<String> {
    suggest::registry_name_hint(typed)
}

/// The candidate closest to a mistyped word, if one is close enough to be a likely typo (the
/// measure behind every "did you mean" of the filter).
pub fn closest_name<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    suggest::closest(word, candidates)
}

/// Longest filter text accepted, in characters.
pub const MAX_LEN: usize = 4096;

/// Deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 64;

/// A parsed filter. Cloning is cheap (the parsed form is shared).
#[derive(Clone, Debug)]
pub struct Filter {
    text: Arc<str>,
    /// `None` for an empty filter, which keeps everything.
    expr: Option<Arc<ast::Expr>>,
    needs_dissection: bool,
}

/// Why a filter text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Where the problem is: the index of the character (not byte) in the filter text, from 0,
    /// so a caret can be drawn under `text.chars().nth(offset)` (or after the end).
    pub offset: usize,
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        FilterError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for FilterError {
    /// `at column N: message`, with N counted from 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.offset + 1, self.message)
    }
}

impl std::error::Error for FilterError {}

/// What a filter is evaluated against: one exchange and what else is known of it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub exchange: &'a crate::Exchange,
    /// The exchange's frames dissected and judged ([`Exchange::dissect`]); `None` if the caller
    /// did not dissect them.
    ///
    /// [`Exchange::dissect`]: crate::Exchange::dissect
    pub dissected: Option<&'a crate::Dissected>,
    /// Client software `name version`, from the stall detector.
    pub software: Option<&'a str>,
    /// `healthy`, `retrying`, `stalled` or `disconnecting`, from the stall detector.
    pub health: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// An exchange with nothing else known (no dissections, no client state).
    pub fn new(exchange: &'a crate::Exchange) -> Self {
        Subject {
            exchange,
            dissected: None,
            software: None,
            health: None,
        }
    }
}

/// Parses a filter. An empty (or all-blank) text is a filter that keeps everything.
pub fn parse(text: &str) -> Result<Filter, FilterError> {
    if text.chars().nth(MAX_LEN).is_some() {
        return Err(FilterError::new(
            MAX_LEN,
            format!("filter is longer than {MAX_LEN} characters"),
        ));
    }
    let tokens = lexer::lex(text)?;
    let expr = parse::parse(tokens, text.chars().count())?;
    Ok(Filter {
        text: Arc::from(text),
        needs_dissection: expr.as_ref().is_some_and(ast::Expr::needs_dissection),
        expr: expr.map(Arc::new),
    })
}

impl Filter {
    /// Whether the exchange passes the filter.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match &self.expr {
            None => true,
            Some(e) => eval::Ctx::new(s).eval(e),
        }
    }

    /// Whether evaluating needs the dissected frames (registry names, `error`, `throttle`,
    /// `malformed`); false when only built-ins read from the exchange are used.
    pub fn needs_dissection(&self) -> bool {
        self.needs_dissection
    }

    /// The text the filter was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the filter is empty (keeps everything).
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }
}
