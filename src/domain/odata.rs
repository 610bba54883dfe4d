//! `$filter` and `$orderby`: the OData subset the list routes accept (comparisons, `in`, `and`,
//! `or`, `not` and parentheses over documented property paths), parsed into a small syntax tree.
//!
//! Grammar (keywords are matched without regard to case; property paths are case-sensitive):
//!
//! ```text
//! filter     = or
//! or         = and *( "or" and )
//! and        = unary *( "and" unary )
//! unary      = "not" unary / "(" or ")" / comparison
//! comparison = path ( ("eq" / "ne" / "gt" / "ge" / "lt" / "le") value / "in" "(" value *( "," value ) ")" )
//! value      = 'string' ('' escapes a quote) / true / false / null / integer / decimal
//!            / date-time (RFC 3339, unquoted: 2026-11-01T00:00:00Z) / date (2026-11-01, midnight UTC)
//! path       = name *( "/" name )
//! orderby    = path [ "asc" / "desc" ]
//! ```
//!
//! So `not` binds tighter than `and`, which binds tighter than `or`; `not` applies to the comparison
//! or parenthesised group that follows it (a property is never a boolean on its own here).
//! Nothing here knows which properties a list has: `store::filter` checks names and types.

use std::fmt;

use crate::domain::Timestamp;

/// Longest `$filter` or `$orderby` accepted, in characters.
pub const MAX_LENGTH: usize = 2000;
/// Deepest nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 32;
/// Most values in one `in (…)`.
pub const MAX_IN_VALUES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        [Self::Eq, Self::Ne, Self::Gt, Self::Ge, Self::Lt, Self::Le]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    /// Whether `left op right` holds, for anything ordered.
    pub fn holds<T: PartialOrd>(self, left: &T, right: &T) -> bool {
        match self {
            Self::Eq => left == right,
            Self::Ne => left != right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Lt => left < right,
            Self::Le => left <= right,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Bool(bool),
    Null,
    Integer(i64),
    Decimal(f64),
    DateTime(Timestamp),
}

impl Literal {
    /// What kind of value this is, for messages ("a string", "a date-time").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::String(_) => "a string",
            Self::Bool(_) => "a boolean",
            Self::Null => "null",
            Self::Integer(_) | Self::Decimal(_) => "a number",
            Self::DateTime(_) => "a date-time",
        }
    }
}

/// A property path as written, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub path: String,
    pub position: usize,
}

/// A literal, and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub literal: Literal,
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Compare {
        property: Property,
        op: CompareOp,
        value: Value,
    },
    In {
        property: Property,
        values: Vec<Value>,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub property: Property,
    pub direction: Direction,
}

/// Why a `$filter` or `$orderby` does not parse; `message` already says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// Byte offset into the text.
    pub position: usize,
    pub message: String,
}

fn syntax(position: usize, what: impl fmt::Display) -> SyntaxError {
    SyntaxError {
        position,
        message: format!("{what} at position {position}"),
    }
}

pub fn parse_filter(text: &str) -> Result<Expr, SyntaxError> {
    let mut parser = Parser::new(text)?;
    let expr = parser.or(0)?;
    match parser.next()? {
        (Token::End, _) => Ok(expr),
        (Token::Close, at) => Err(syntax(at, "unmatched ')'")),
        (token, at) => Err(syntax(
            at,
            format!("expected 'and', 'or' or the end of the filter, found {token}"),
        )),
    }
}

/// One sort key: `path [asc|desc]`.
pub fn parse_orderby(text: &str) -> Result<OrderBy, SyntaxError> {
    let mut parser = Parser::new(text)?;
    let property = match parser.next()? {
        (Token::Path(path), position) => Property { path, position },
        (token, at) => {
            return Err(syntax(
                at,
                format!("expected a property path, found {token}"),
            ));
        }
    };
    let mut direction = Direction::Asc;
    let mut next = parser.next()?;
    if let (Token::Path(word), _) = &next {
        if word.eq_ignore_ascii_case("asc") {
            next = parser.next()?;
        } else if word.eq_ignore_ascii_case("desc") {
            direction = Direction::Desc;
            next = parser.next()?;
        }
    }
    match next {
        (Token::End, _) => Ok(OrderBy {
            property,
            direction,
        }),
        (Token::Comma, at) => Err(syntax(at, "only one $orderby key is supported; found ','")),
        (token, at) => Err(syntax(
            at,
            format!("expected 'asc', 'desc' or the end of $orderby, found {token}"),
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    /// A name, keyword or `a/b/c` path.
    Path(String),
    Literal(Literal),
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("'('"),
            Self::Close => f.write_str("')'"),
            Self::Comma => f.write_str("','"),
            Self::Path(p) => write!(f, "'{}'", shorten(p)),
            Self::Literal(l) => write!(f, "{}", l.kind()),
            Self::End => f.write_str("the end"),
        }
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}

const KEYWORDS: [&str; 13] = [
    "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "true", "false", "null",
];

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    peeked: Option<(Token, usize)>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, SyntaxError> {
        if let Some((at, _)) = text.char_indices().nth(MAX_LENGTH) {
            return Err(syntax(
                at,
                format!("longer than {MAX_LENGTH} characters; the excess starts"),
            ));
        }
        Ok(Self {
            text,
            at: 0,
            peeked: None,
        })
    }

    fn peek(&mut self) -> Result<&(Token, usize), SyntaxError> {
        let token = match self.peeked.take() {
            Some(token) => token,
            None => self.lex()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<(Token, usize), SyntaxError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lex(),
        }
    }

    fn peek_keyword(&mut self, keyword: &str) -> Result<bool, SyntaxError> {
        Ok(matches!(self.peek()?, (Token::Path(w), _) if w.eq_ignore_ascii_case(keyword)))
    }

    fn lex(&mut self) -> Result<(Token, usize), SyntaxError> {
        let bytes = self.text.as_bytes();
        while self.at < bytes.len() && bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        let start = self.at;
        let Some(&first) = bytes.get(start) else {
            return Ok((Token::End, start));
        };
        let token = match first {
            b'(' => {
                self.at += 1;
                Token::Open
            }
            b')' => {
                self.at += 1;
                Token::Close
            }
            b',' => {
                self.at += 1;
                Token::Comma
            }
            b'\'' => Token::Literal(Literal::String(self.string(start)?)),
            b'0'..=b'9' => Token::Literal(self.number_or_time(start)?),
            b'-' if bytes.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                Token::Literal(self.number_or_time(start)?)
            }
            b if b.is_ascii_alphabetic() || b == b'_' => Token::Path(self.path(start)?),
            _ => {
                let c = self.text[start..].chars().next().unwrap_or('?');
                return Err(syntax(start, format!("unexpected character {c:?}")));
            }
        };
        Ok((token, start))
    }

    fn string(&mut self, start: usize) -> Result<String, SyntaxError> {
        let mut out = String::new();
        let mut i = start + 1;
        loop {
            let Some(rest) = self.text.get(i..) else {
                return Err(syntax(start, "unterminated string"));
            };
            let Some(quote) = rest.find('\'') else {
                return Err(syntax(start, "unterminated string"));
            };
            out.push_str(&rest[..quote]);
            i += quote + 1;
            if self.text.as_bytes().get(i) == Some(&b'\'') {
                out.push('\'');
                i += 1;
            } else {
                self.at = i;
                return Ok(out);
            }
        }
    }

    fn name(&mut self) -> usize {
        let bytes = self.text.as_bytes();
        let start = self.at;
        while self.at < bytes.len()
            && (bytes[self.at].is_ascii_alphanumeric() || bytes[self.at] == b'_')
        {
            self.at += 1;
        }
        self.at - start
    }

    fn path(&mut self, start: usize) -> Result<String, SyntaxError> {
        self.name();
        while self.text.as_bytes().get(self.at) == Some(&b'/') {
            self.at += 1;
            let segment = self.at;
            let starts_well = self
                .text
                .as_bytes()
                .get(segment)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
            if !starts_well || self.name() == 0 {
                return Err(syntax(segment, "expected a property name after '/'"));
            }
        }
        Ok(self.text[start..self.at].to_owned())
    }

    /// Numbers and date-times share their first characters, so the whole run is read first.
    fn number_or_time(&mut self, start: usize) -> Result<Literal, SyntaxError> {
        let bytes = self.text.as_bytes();
        let mut end = start + 1;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric()
                || matches!(bytes[end], b'.' | b':' | b'+' | b'-'))
        {
            end += 1;
        }
        self.at = end;
        let run = &self.text[start..end];
        let digits = run.strip_prefix('-').unwrap_or(run);
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            return run
                .parse()
                .map(Literal::Integer)
                .map_err(|_| syntax(start, format!("the number {run} is out of range")));
        }
        let decimal = digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        if decimal && let Ok(n) = run.parse::<f64>() {
            if n.is_finite() {
                return Ok(Literal::Decimal(n));
            }
            return Err(syntax(start, format!("the number {run} is out of range")));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(run) {
            return Ok(Literal::DateTime(Timestamp::from_datetime(t.to_utc())));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(run, "%Y-%m-%d")
            && run.len() == 10
        {
            let midnight = d.and_time(chrono::NaiveTime::MIN).and_utc();
            return Ok(Literal::DateTime(Timestamp::from_datetime(midnight)));
        }
        Err(syntax(
            start,
            format!(
                "'{}' is neither a number nor an RFC 3339 date-time (such as 2026-11-01T00:00:00Z)",
                shorten(run)
            ),
        ))
    }

    fn or(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let mut left = self.and(depth)?;
        while self.peek_keyword("or")? {
            self.next()?;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let mut left = self.unary(depth)?;
        while self.peek_keyword("and")? {
            self.next()?;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, SyntaxError> {
        let (token, at) = self.next()?;
        let deeper = |depth: usize| {
            if depth >= MAX_DEPTH {
                Err(syntax(at, format!("nested deeper than {MAX_DEPTH} levels")))
            } else {
                Ok(depth + 1)
            }
        };
        match token {
            Token::Path(word) if word.eq_ignore_ascii_case("not") => {
                Ok(Expr::Not(Box::new(self.unary(deeper(depth)?)?)))
            }
            Token::Open => {
                let inner = self.or(deeper(depth)?)?;
                match self.next()? {
                    (Token::Close, _) => Ok(inner),
                    (token, at) => Err(syntax(at, format!("expected ')', found {token}"))),
                }
            }
            Token::Path(path) if !is_keyword(&path) => {
                self.comparison(Property { path, position: at })
            }
            token => Err(syntax(
                at,
                format!("expected a property path, 'not' or '(', found {token}"),
            )),
        }
    }

    fn comparison(&mut self, property: Property) -> Result<Expr, SyntaxError> {
        let (token, at) = self.next()?;
        let op = match &token {
            Token::Path(word) if word.eq_ignore_ascii_case("in") => None,
            Token::Path(word) => CompareOp::parse(word).map(Some).ok_or_else(|| {
                syntax(
                    at,
                    format!("expected a comparison operator (eq, ne, gt, ge, lt, le or in), found {token}"),
                )
            })?,
            _ => {
                return Err(syntax(
                    at,
                    format!("expected a comparison operator (eq, ne, gt, ge, lt, le or in), found {token}"),
                ));
            }
        };
        if let Some(op) = op {
            let value = self.value()?;
            return Ok(Expr::Compare {
                property,
                op,
                value,
            });
        }
        match self.next()? {
            (Token::Open, _) => {}
            (token, at) => {
                return Err(syntax(
                    at,
                    format!("expected '(' after 'in', found {token}"),
                ));
            }
        }
        let mut values = vec![self.value()?];
        loop {
            match self.next()? {
                (Token::Close, _) => break,
                (Token::Comma, at) => {
                    if values.len() == MAX_IN_VALUES {
                        return Err(syntax(
                            at,
                            format!("more than {MAX_IN_VALUES} values in 'in (…)'"),
                        ));
                    }
                    values.push(self.value()?);
                }
                (token, at) => {
                    return Err(syntax(at, format!("expected ',' or ')', found {token}")));
                }
            }
        }
        Ok(Expr::In { property, values })
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        let (token, position) = self.next()?;
        let literal = match token {
            Token::Literal(literal) => literal,
            Token::Path(word) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Token::Path(word) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Token::Path(word) if word.eq_ignore_ascii_case("null") => Literal::Null,
            token => {
                return Err(syntax(
                    position,
                    format!(
                        "expected a value ('string', number, date-time, true, false or null), found {token}"
                    ),
                ));
            }
        };
        Ok(Value { literal, position })
    }
}

// The canonical text: what a skip token's fingerprint covers (positions and spelling left out).

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Null => f.write_str("null"),
            Self::Integer(n) => write!(f, "{n}"),
            Self::Decimal(n) => write!(f, "{n:?}"),
            Self::DateTime(t) => f.write_str(&t.rfc3339()),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compare {
                property,
                op,
                value,
            } => write!(f, "{} {} {}", property.path, op.as_str(), value.literal),
            Self::In { property, values } => {
                write!(f, "{} in (", property.path)?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", v.literal)?;
                }
                f.write_str(")")
            }
            Self::Not(e) => write!(f, "not ({e})"),
            Self::And(a, b) => write!(f, "({a}) and ({b})"),
            Self::Or(a, b) => write!(f, "({a}) or ({b})"),
        }
    }
}

impl fmt::Display for OrderBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        };
        write!(f, "{} {direction}", self.property.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str, position: usize) -> Property {
        Property {
            path: path.to_owned(),
            position,
        }
    }

    fn v(literal: Literal, position: usize) -> Value {
        Value { literal, position }
    }

    fn cmp(path: &str, at: usize, op: CompareOp, literal: Literal, vat: usize) -> Expr {
        Expr::Compare {
            property: p(path, at),
            op,
            value: v(literal, vat),
        }
    }

    fn s(text: &str) -> Literal {
        Literal::String(text.to_owned())
    }

    fn and(a: Expr, b: Expr) -> Expr {
        Expr::And(Box::new(a), Box::new(b))
    }

    fn or(a: Expr, b: Expr) -> Expr {
        Expr::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Expr) -> Expr {
        Expr::Not(Box::new(a))
    }

    fn time(text: &str) -> Literal {
        Literal::DateTime(Timestamp::from_datetime(
            chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc(),
        ))
    }

    #[test]
    fn valid_filters_parse_to_the_expected_tree() {
        use CompareOp::*;
        let sev = "properties/status/severity";
        let cases: Vec<(&str, Expr)> = vec![
            ("name eq 'a'", cmp("name", 0, Eq, s("a"), 8)),
            ("  name   ne  'it''s'  ", cmp("name", 2, Ne, s("it's"), 13)),
            ("name eq ''", cmp("name", 0, Eq, s(""), 8)),
            ("name eq 'é ü'", cmp("name", 0, Eq, s("é ü"), 8)),
            (
                "properties/status/severity eq 'High'",
                cmp(sev, 0, Eq, s("High"), 30),
            ),
            ("x gt 5", cmp("x", 0, Gt, Literal::Integer(5), 5)),
            ("x ge -5", cmp("x", 0, Ge, Literal::Integer(-5), 5)),
            ("x lt 7.5", cmp("x", 0, Lt, Literal::Decimal(7.5), 5)),
            ("x le 1e3", cmp("x", 0, Le, Literal::Decimal(1000.0), 5)),
            ("x eq true", cmp("x", 0, Eq, Literal::Bool(true), 5)),
            ("x eq FALSE", cmp("x", 0, Eq, Literal::Bool(false), 5)),
            ("x eq null", cmp("x", 0, Eq, Literal::Null, 5)),
            (
                "x ge 2026-11-01T00:00:00Z",
                cmp("x", 0, Ge, time("2026-11-01T00:00:00Z"), 5),
            ),
            (
                "x lt 2026-11-01T01:30:00.123456+01:00",
                cmp("x", 0, Lt, time("2026-11-01T00:30:00.123456Z"), 5),
            ),
            (
                "x lt 2026-11-01",
                cmp("x", 0, Lt, time("2026-11-01T00:00:00Z"), 5),
            ),
            (
                "x in ('a', 'b','c')",
                Expr::In {
                    property: p("x", 0),
                    values: vec![v(s("a"), 6), v(s("b"), 11), v(s("c"), 15)],
                },
            ),
            (
                "x IN (1)",
                Expr::In {
                    property: p("x", 0),
                    values: vec![v(Literal::Integer(1), 6)],
                },
            ),
            // and binds tighter than or
            (
                "a eq 1 or b eq 2 and c eq 3",
                or(
                    cmp("a", 0, Eq, Literal::Integer(1), 5),
                    and(
                        cmp("b", 10, Eq, Literal::Integer(2), 15),
                        cmp("c", 21, Eq, Literal::Integer(3), 26),
                    ),
                ),
            ),
            (
                "(a eq 1 or b eq 2) and c eq 3",
                and(
                    or(
                        cmp("a", 1, Eq, Literal::Integer(1), 6),
                        cmp("b", 11, Eq, Literal::Integer(2), 16),
                    ),
                    cmp("c", 23, Eq, Literal::Integer(3), 28),
                ),
            ),
            // left-associative chains
            (
                "a eq 1 and b eq 2 and c eq 3",
                and(
                    and(
                        cmp("a", 0, Eq, Literal::Integer(1), 5),
                        cmp("b", 11, Eq, Literal::Integer(2), 16),
                    ),
                    cmp("c", 22, Eq, Literal::Integer(3), 27),
                ),
            ),
            // not binds tighter than and
            (
                "not a eq 1 and b eq 2",
                and(
                    not(cmp("a", 4, Eq, Literal::Integer(1), 9)),
                    cmp("b", 15, Eq, Literal::Integer(2), 20),
                ),
            ),
            (
                "not (a eq 1 or b eq 2)",
                not(or(
                    cmp("a", 5, Eq, Literal::Integer(1), 10),
                    cmp("b", 15, Eq, Literal::Integer(2), 20),
                )),
            ),
            (
                "not not a eq 1",
                not(not(cmp("a", 8, Eq, Literal::Integer(1), 13))),
            ),
            ("((a eq 1))", cmp("a", 2, Eq, Literal::Integer(1), 7)),
            (
                "a_b/c1 eq 'x'and b eq 'y'",
                and(
                    cmp("a_b/c1", 0, Eq, s("x"), 10),
                    cmp("b", 17, Eq, s("y"), 22),
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_filter(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn invalid_filters_say_where() {
        let deep = format!("{}a eq 1{}", "(".repeat(33), ")".repeat(33));
        let deep_not = format!("{}a eq 1", "not ".repeat(33));
        let many = format!(
            "a in ({})",
            (0..101)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let long = format!("a eq '{}'", "x".repeat(2000));
        let cases: Vec<(&str, usize, &str)> = vec![
            ("", 0, "expected a property path"),
            ("name", 4, "expected a comparison operator"),
            ("name eq", 7, "expected a value"),
            ("name like 'a'", 5, "expected a comparison operator"),
            ("name eq 'abc", 8, "unterminated string"),
            ("name eq 'it''s", 8, "unterminated string"),
            ("(name eq 'a'", 12, "expected ')'"),
            ("(name eq 'a' and (b eq 1)", 25, "expected ')'"),
            ("name eq 'a')", 11, "unmatched ')'"),
            ("name eq 'a' xor b eq 1", 12, "expected 'and', 'or'"),
            ("name eq 'a' and", 15, "expected a property path"),
            ("and eq 1", 0, "expected a property path"),
            ("eq eq 1", 0, "expected a property path"),
            ("name eq @", 8, "unexpected character '@'"),
            ("properties/ eq 1", 11, "expected a property name after '/'"),
            (
                "properties//x eq 1",
                11,
                "expected a property name after '/'",
            ),
            ("a eq 2026-13-01T00:00:00Z", 5, "neither a number nor"),
            ("a eq 12abc", 5, "neither a number nor"),
            ("a eq 99999999999999999999", 5, "out of range"),
            ("a in ()", 6, "expected a value"),
            ("a in ('x' 'y')", 10, "expected ',' or ')'"),
            ("a in 'x'", 5, "expected '(' after 'in'"),
            ("a eq b", 5, "expected a value"),
            ("'a' eq a", 0, "expected a property path"),
            (&deep, 32, "nested deeper than 32"),
            (&deep_not, 128, "nested deeper than 32"),
            (&many, 295, "more than 100 values"),
            (&long, 2000, "longer than 2000 characters"),
        ];
        for (text, position, message) in cases {
            let err = parse_filter(text).expect_err(text);
            assert_eq!(err.position, position, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
            assert!(
                err.message.contains(&format!("at position {position}")),
                "{text}: {err}"
            );
        }
        // Exactly at the limits is fine.
        let nested = format!("{}a eq 1{}", "(".repeat(32), ")".repeat(32));
        assert!(parse_filter(&nested).is_ok());
        let hundred = format!(
            "a in ({})",
            (0..100)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(parse_filter(&hundred).is_ok());
        assert!(parse_filter(&format!("a eq '{}'", "x".repeat(1992))).is_ok());
    }

    #[test]
    fn orderby_is_one_key_with_a_direction() {
        let ok = |text: &str, path: &str, direction| {
            assert_eq!(
                parse_orderby(text),
                Ok(OrderBy {
                    property: p(path, text.find(path).unwrap()),
                    direction
                }),
                "{text}"
            );
        };
        ok("name", "name", Direction::Asc);
        ok(
            " properties/status/severity desc ",
            "properties/status/severity",
            Direction::Desc,
        );
        ok("a/b ASC", "a/b", Direction::Asc);
        for (text, position, message) in [
            ("name, properties/id", 4, "only one $orderby key"),
            ("name up", 5, "expected 'asc', 'desc'"),
            ("name desc asc", 10, "expected 'asc', 'desc'"),
            ("'name'", 0, "expected a property path"),
            ("", 0, "expected a property path"),
        ] {
            let err = parse_orderby(text).expect_err(text);
            assert_eq!(err.position, position, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn canonical_text_ignores_spelling_and_round_trips() {
        let a = parse_filter("NOT (a eq 'x''y' OR b IN (1, 2.5,true))and c ge 2026-11-01").unwrap();
        let b =
            parse_filter("not(a eq 'x''y' or b in (1,2.5, true)) and c ge 2026-11-01T00:00:00Z")
                .unwrap();
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(
            a.to_string(),
            "(not ((a eq 'x''y') or (b in (1, 2.5, true)))) and (c ge 2026-11-01T00:00:00.000000Z)"
        );
        assert_eq!(
            parse_filter(&a.to_string()).unwrap().to_string(),
            a.to_string()
        );
    }
}
