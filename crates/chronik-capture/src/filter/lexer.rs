//! Splits filter text into tokens, each with the character column it starts at.

use super::ast::Op;
use super::FilterError;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!` alone
    Bang,
    /// A symbolic comparison operator.
    Op(Op),
    /// A run of letters, digits and `_ . - : µ`: a name, keyword, number or bare word.
    Word(String),
    /// A double-quoted string, unescaped.
    Quoted(String),
}

/// A token and where it starts (character index).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
}

impl Token {
    /// How the token reads in a message.
    pub(crate) fn show(&self) -> String {
        match &self.tok {
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::AndAnd => "`&&`".into(),
            Tok::OrOr => "`||`".into(),
            Tok::Bang => "`!`".into(),
            Tok::Op(op) => format!("`{}`", op.symbol()),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Quoted(s) => format!("the string \"{s}\""),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':')
}

/// The tokens of a filter text.
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let col = i;
        let (tok, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('&', _) => return Err(FilterError::new(col, "`&` alone: write `&&` or `and`")),
            ('|', _) => return Err(FilterError::new(col, "`|` alone: write `||` or `or`")),
            ('=', Some('=')) => (Tok::Op(Op::Eq), 2),
            ('=', _) => return Err(FilterError::new(col, "`=` alone: write `==` to compare")),
            ('!', Some('=')) => (Tok::Op(Op::Ne), 2),
            ('!', Some('~')) => (Tok::Op(Op::NotContains), 2),
            ('!', _) => (Tok::Bang, 1),
            ('<', Some('=')) => (Tok::Op(Op::Le), 2),
            ('<', _) => (Tok::Op(Op::Lt), 1),
            ('>', Some('=')) => (Tok::Op(Op::Ge), 2),
            ('>', _) => (Tok::Op(Op::Gt), 1),
            ('~', _) => (Tok::Op(Op::Contains), 1),
            ('"', _) => {
                let (s, len) = quoted(&chars, i)?;
                (Tok::Quoted(s), len)
            }
            (c, _) if is_word_char(c) => {
                let len = chars[i..].iter().take_while(|c| is_word_char(**c)).count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
            (c, _) => {
                return Err(FilterError::new(
                    col,
                    format!("unexpected character `{c}`; quote values that contain it"),
                ))
            }
        };
        out.push(Token { tok, col });
        i += len;
    }
    Ok(out)
}

/// The string starting at the quote at `start`: its content and its length in the text.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(FilterError::new(
                    start,
                    "unclosed string: add the closing `\"`",
                ))
            }
            Some('"') => return Ok((s, i + 1 - start)),
            Some('\\') => match chars.get(i + 1) {
                Some(c @ ('"' | '\\')) => {
                    s.push(*c);
                    i += 2;
                }
                Some(c) => {
                    return Err(FilterError::new(
                        i,
                        format!("unknown escape `\\{c}`: only `\\\"` and `\\\\` are escapes"),
                    ))
                }
                None => {
                    return Err(FilterError::new(
                        start,
                        "unclosed string: add the closing `\"`",
                    ))
                }
            },
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}
