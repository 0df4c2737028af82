//! The parser: tokens to an [`Expr`], by recursive descent with a bounded depth.
//!
//! ```text
//! filter  = or
//! or      = and { ("||" | "or") and }
//! and     = unary { ("&&" | "and") unary }
//! unary   = ("!" | "not") unary | primary
//! primary = "(" or ")" | NAME [ OP VALUE ]
//! ```

use chronik_protocol::registry;

use super::ast::{Codes, Expr, Op, Side, Target};
use super::builtins::Builtin;
use super::lexer::{Tok, Token};
use super::literal::{self, Kind, Literal, Ty};
use super::suggest;
use super::{FilterError, MAX_DEPTH};

/// Parses tokens; `None` for no tokens (an empty filter). `end` is the text's length in
/// characters, where errors about a missing end point.
pub(crate) fn parse(tokens: Vec<Token>, end: usize) -> Result<Option<Expr>, FilterError> {
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        end,
    };
    let e = p.or(0)?;
    if let Some(t) = p.peek() {
        return Err(match t.tok {
            Tok::RParen => FilterError::new(t.col, "`)` without a matching `(`"),
            _ => FilterError::new(
                t.col,
                format!(
                    "expected `and`, `or` or the end of the filter, found {}",
                    t.show()
                ),
            ),
        });
    }
    Ok(Some(e))
}

/// A keyword, as a symbol or a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    And,
    Or,
    Not,
}

fn keyword(t: &Token) -> Option<Kw> {
    match &t.tok {
        Tok::AndAnd => Some(Kw::And),
        Tok::OrOr => Some(Kw::Or),
        Tok::Bang => Some(Kw::Not),
        Tok::Word(w) => match w.to_ascii_lowercase().as_str() {
            "and" => Some(Kw::And),
            "or" => Some(Kw::Or),
            "not" => Some(Kw::Not),
            _ => None,
        },
        _ => None,
    }
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += usize::from(t.is_some());
        t
    }

    fn peek_kw(&self) -> Option<Kw> {
        self.peek().and_then(keyword)
    }

    fn too_deep(col: usize) -> FilterError {
        FilterError::new(
            col,
            format!("nested deeper than {MAX_DEPTH} levels of parentheses and negations"),
        )
    }

    fn or(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut items = vec![self.and(depth)?];
        while self.peek_kw() == Some(Kw::Or) {
            self.pos += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary(depth)?];
        while self.peek_kw() == Some(Kw::And) {
            self.pos += 1;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if self.peek_kw() == Some(Kw::Not) {
            let col = self.peek().map_or(self.end, |t| t.col);
            if depth >= MAX_DEPTH {
                return Err(Self::too_deep(col));
            }
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let Some(t) = self.next() else {
            return Err(FilterError::new(
                self.end,
                "the filter ends where a test is expected",
            ));
        };
        if let Some(kw) = keyword(&t) {
            // `not` is taken by `unary`; `and`/`or` here have nothing on their left.
            let what = if kw == Kw::Not { "after" } else { "before" };
            return Err(FilterError::new(
                t.col,
                format!("expected a test {what} {}", t.show()),
            ));
        }
        match t.tok {
            Tok::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(Self::too_deep(t.col));
                }
                let e = self.or(depth + 1)?;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => Ok(e),
                    Some(other) => Err(FilterError::new(
                        other.col,
                        format!("expected `)`, `and` or `or`, found {}", other.show()),
                    )),
                    None => Err(FilterError::new(
                        t.col,
                        "unclosed parenthesis: add the matching `)`",
                    )),
                }
            }
            Tok::Word(ref w) => self.test(w, t.col),
            Tok::Quoted(_) => Err(FilterError::new(
                t.col,
                format!(
                    "expected a field name, found {}; only values are quoted",
                    t.show()
                ),
            )),
            Tok::Op(op) => Err(FilterError::new(
                t.col,
                format!("expected a field name before `{}`", op.symbol()),
            )),
            _ => Err(FilterError::new(
                t.col,
                format!("expected a test, found {}", t.show()),
            )),
        }
    }

    /// `NAME [OP VALUE]`, the name already taken.
    fn test(&mut self, word: &str, col: usize) -> Result<Expr, FilterError> {
        let (target, ty) = resolve(word, col)?;
        let op = match self.peek() {
            None => None,
            Some(t) => match (&t.tok, keyword(t)) {
                (Tok::Op(op), _) => Some((*op, t.col)),
                (_, Some(Kw::And | Kw::Or)) => None,
                (Tok::Word(w), None) if Op::from_word(w).is_some() => {
                    Op::from_word(w).map(|op| (op, t.col))
                }
                (Tok::RParen, _) => None,
                _ => {
                    return Err(FilterError::new(
                        t.col,
                        format!(
                            "expected an operator (== != < <= > >= ~ !~), `and` or `or` after \
                             `{word}`, found {}",
                            t.show()
                        ),
                    ))
                }
            },
        };
        let Some((op, op_col)) = op else {
            return Ok(Expr::Present(target));
        };
        self.pos += 1;
        let lit = self.value(op)?;
        let rhs = literal::convert(word, ty, op, op_col, &lit)?;
        Ok(Expr::Compare { target, op, rhs })
    }

    /// The value after an operator.
    fn value(&mut self, op: Op) -> Result<Literal, FilterError> {
        let missing = |at: usize, found: String| {
            FilterError::new(at, format!("missing value after `{}`{found}", op.symbol()))
        };
        let Some(t) = self.peek() else {
            return Err(missing(self.end, String::new()));
        };
        let lit = match &t.tok {
            Tok::Word(_) if keyword(t).is_some() => {
                return Err(missing(
                    t.col,
                    format!(", found {} (quote it to compare with the word)", t.show()),
                ))
            }
            Tok::Word(w) => Literal {
                text: w.clone(),
                quoted: false,
                col: t.col,
            },
            Tok::Quoted(s) => Literal {
                text: s.clone(),
                quoted: true,
                col: t.col,
            },
            _ => return Err(missing(t.col, format!(", found {}", t.show()))),
        };
        self.pos += 1;
        Ok(lit)
    }
}

/// What a name refers to and the type of its values.
pub(super) fn resolve(word: &str, col: usize) -> Result<(Target, Ty), FilterError> {
    let name = word.to_lowercase();
    if let Some(b) = Builtin::lookup(&name) {
        return Ok((Target::Builtin(b), b.ty()));
    }
    let cat = registry::catalog();
    if let Some(id) = cat.id(&name) {
        let ty = cat
            .entries
            .get(id.0 as usize)
            .and_then(literal::registry_ty)
            .unwrap_or(Ty {
                kind: Kind::Text,
                nullable: true,
            });
        let codes = match ty.kind {
            Kind::Api => Codes::Api,
            Kind::Error => Codes::Error,
            Kind::Bytes => Codes::Span,
            _ => Codes::Plain,
        };
        let target = Target::Field {
            id,
            side: side_of(&name),
            codes,
        };
        return Ok((target, ty));
    }
    let hint = suggest::name_hint(&name)
        .map(|h| format!("; {h}"))
        .unwrap_or_default();
    Err(FilterError::new(
        col,
        format!("unknown field `{word}`{hint}"),
    ))
}

/// Which frame a registry name can occur in.
pub(crate) fn side_of(name: &str) -> Side {
    match name {
        "kafka.request"
        | "kafka.request_header"
        | "kafka.api_key"
        | "kafka.api_version"
        | "kafka.client_id" => return Side::Request,
        "kafka.response" | "kafka.response_header" => return Side::Response,
        _ => {}
    }
    let mut segments = name.split('.');
    match (segments.next(), segments.next()) {
        (Some(first), Some("request")) if first != "kafka" => Side::Request,
        (Some(first), Some("response")) if first != "kafka" => Side::Response,
        _ => Side::Both,
    }
}
