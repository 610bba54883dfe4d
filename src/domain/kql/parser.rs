//! Text → syntax tree: the grammar in `kql.pest` (parsed by pest), operator precedence by pest's
//! Pratt parser, then names, functions and arities checked while the tree is built.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::LazyLock;

use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use regex::Regex;
use serde_json::{Map, Value};

use super::KqlError;
use super::ast::{
    BinaryOp, Expr, ExprKind, JoinKind, NamedAggregate, NamedExpr, Operator, ParsePart, Pattern,
    SortKey, Source, Tabular, TextOp, TypeName,
};
use super::functions::{Aggregation, Function};
use super::value::{Scalar, parse_datetime, timespan_unit};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_LENGTH: usize = 100_000;
/// Deepest nesting of brackets, and longest run of signs (`- - 1`), accepted.
pub const MAX_NESTING: usize = 64;
/// Deepest expression tree accepted (a chain of 256 `or`s is still fine).
pub const MAX_EXPRESSION_DEPTH: usize = 256;

#[derive(pest_derive::Parser)]
#[grammar = "domain/kql/kql.pest"]
struct Grammar;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::infix(Rule::op_eq, Assoc::Left)
            | Op::infix(Rule::op_ne, Assoc::Left)
            | Op::infix(Rule::op_eq_ci, Assoc::Left)
            | Op::infix(Rule::op_ne_ci, Assoc::Left)
            | Op::infix(Rule::op_lt, Assoc::Left)
            | Op::infix(Rule::op_le, Assoc::Left)
            | Op::infix(Rule::op_gt, Assoc::Left)
            | Op::infix(Rule::op_ge, Assoc::Left)
            | Op::infix(Rule::op_string, Assoc::Left)
            | Op::infix(Rule::op_matches, Assoc::Left)
            | Op::postfix(Rule::in_list)
            | Op::postfix(Rule::between))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left)
            | Op::infix(Rule::op_div, Assoc::Left)
            | Op::infix(Rule::op_mod, Assoc::Left))
        .op(Op::prefix(Rule::neg) | Op::prefix(Rule::pos))
        .op(Op::postfix(Rule::member) | Op::postfix(Rule::index))
});

/// Parses a whole query: its `let` statements are substituted into the tabular expression.
pub(super) fn parse_query(text: &str) -> Result<Tabular, KqlError> {
    prescan(text)?;
    let mut pairs = Grammar::parse(Rule::query, text).map_err(|e| syntax_error(text, &e))?;
    let query = pairs
        .next()
        .ok_or_else(|| error_at(text, "ParserFailure", 0, "empty query"))?;
    let mut builder = Builder {
        text,
        lets: HashMap::new(),
        inlined: Cell::new(0),
    };
    let mut tabular = None;
    for pair in query.into_inner() {
        match pair.as_rule() {
            Rule::let_stmt => {
                let mut inner = pair.into_inner().filter(|p| p.as_rule() != Rule::kw_let);
                let (Some(name), Some(_assign), Some(value)) =
                    (inner.next(), inner.next(), inner.next())
                else {
                    continue;
                };
                let name = builder.name(name)?;
                let value = builder.expr(value)?;
                let size = node_count(&value.expr);
                builder.lets.insert(name, (value, size));
            }
            Rule::tabular => tabular = Some(builder.tabular(pair)?),
            _ => {}
        }
    }
    tabular.ok_or_else(|| error_at(text, "ParserFailure", text.len(), "no tabular expression"))
}

/// Refuses what would make the parser or the evaluator recurse too deep, and points at an
/// unterminated string where it starts (pest would point at the end of the text).
fn prescan(text: &str) -> Result<(), KqlError> {
    if text.len() > MAX_QUERY_LENGTH {
        return Err(error_at(
            text,
            "InvalidQuery",
            MAX_QUERY_LENGTH,
            &format!("the query is longer than {MAX_QUERY_LENGTH} bytes"),
        ));
    }
    let bytes = text.as_bytes();
    let (mut depth, mut signs, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let verbatim = i > 0 && bytes.get(i - 1) == Some(&b'@');
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(error_at(
                                text,
                                "ParserFailure",
                                start,
                                "unterminated string literal",
                            ));
                        }
                        Some(b'\n') if !verbatim => {
                            return Err(error_at(
                                text,
                                "ParserFailure",
                                start,
                                "unterminated string literal",
                            ));
                        }
                        Some(b'\\') if !verbatim => i += 2,
                        Some(&c) if c == b => {
                            if verbatim && bytes.get(i + 1) == Some(&b) {
                                i += 2;
                            } else {
                                break;
                            }
                        }
                        Some(_) => i += 1,
                    }
                }
                signs = 0;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(error_at(
                        text,
                        "InvalidQuery",
                        i,
                        &format!("brackets nest deeper than {MAX_NESTING}"),
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'+' => {
                signs += 1;
                if signs > MAX_NESTING {
                    return Err(error_at(text, "InvalidQuery", i, "too many signs in a row"));
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => signs = 0,
        }
        i += 1;
    }
    Ok(())
}

/// Most expression nodes that uses of `let` names may copy into a query.
pub const MAX_INLINED_NODES: usize = 10_000;

/// A tree node with the depth of the tree under it.
struct Node {
    expr: Expr,
    depth: usize,
}

struct Builder<'t> {
    text: &'t str,
    /// Each `let` name's expression and its node count.
    lets: HashMap<String, (Node, usize)>,
    /// Nodes copied in for `let` names so far: each use copies the expression, so a chain of
    /// lets that each use the previous twice would grow the tree exponentially.
    inlined: Cell<usize>,
}

impl Builder<'_> {
    fn invalid(&self, at: usize, message: impl Into<String>) -> KqlError {
        error_at(self.text, "InvalidQuery", at, &message.into())
    }

    fn tabular(&self, pair: Pair<'_, Rule>) -> Result<Tabular, KqlError> {
        let mut inner = pair.into_inner();
        let source = match inner.next() {
            Some(p) => self.source(p)?,
            None => return Err(self.invalid(0, "missing table")),
        };
        let operators = inner.map(|p| self.operator(p)).collect::<Result<_, _>>()?;
        Ok(Tabular { source, operators })
    }

    fn source(&self, pair: Pair<'_, Rule>) -> Result<Source, KqlError> {
        Ok(match pair.as_rule() {
            Rule::table => {
                let at = pair.as_span().start();
                let name = pair.into_inner().next().map(|n| self.name(n)).transpose()?;
                Source::Table {
                    name: name.unwrap_or_default(),
                    at,
                }
            }
            Rule::nested => Source::Nested(Box::new(self.nested(pair)?)),
            Rule::union_source => Source::Union(self.union_args(pair)?),
            _ => return Err(self.invalid(pair.as_span().start(), "expected a table")),
        })
    }

    fn nested(&self, pair: Pair<'_, Rule>) -> Result<Tabular, KqlError> {
        match pair.into_inner().next() {
            Some(tabular) => self.tabular(tabular),
            None => Err(self.invalid(0, "empty parentheses")),
        }
    }

    fn union_args(&self, pair: Pair<'_, Rule>) -> Result<Vec<Tabular>, KqlError> {
        pair.into_inner()
            .filter(|p| p.as_rule() != Rule::kw_union)
            .map(|p| {
                Ok(match self.source(p)? {
                    Source::Nested(t) => *t,
                    source => Tabular {
                        source,
                        operators: Vec::new(),
                    },
                })
            })
            .collect()
    }

    fn operator(&self, pair: Pair<'_, Rule>) -> Result<Operator, KqlError> {
        let at = pair.as_span().start();
        let rule = pair.as_rule();
        // Keywords carry no meaning beyond the operator's rule.
        let mut inner = pair
            .into_inner()
            .filter(|p| !is_keyword(p.as_rule()))
            .peekable();
        Ok(match rule {
            Rule::where_op => Operator::Where(self.required_expr(inner.next(), at)?),
            Rule::extend_op => Operator::Extend(self.named_exprs(inner, false)?),
            Rule::project_op => Operator::Project(self.named_exprs(inner, false)?),
            Rule::project_away_op => {
                Operator::ProjectAway(inner.map(|p| p.as_str().to_owned()).collect())
            }
            Rule::project_rename_op => Operator::ProjectRename(
                inner
                    .map(|rename| {
                        let mut names = rename.into_inner().filter(|p| p.as_rule() == Rule::name);
                        match (names.next(), names.next()) {
                            (Some(new), Some(old)) => Ok((self.name(new)?, self.name(old)?)),
                            _ => Err(self.invalid(at, "project-rename needs new = old")),
                        }
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Rule::summarize_op => {
                let mut aggregates = Vec::new();
                let mut by = Vec::new();
                for part in inner {
                    match part.as_rule() {
                        Rule::aggregates => {
                            let mut used = Vec::new();
                            for named in part.into_inner() {
                                let aggregate = self.aggregate(named, &mut used)?;
                                aggregates.push(aggregate);
                            }
                        }
                        Rule::by_clause => {
                            by = self.named_exprs(
                                part.into_inner().filter(|p| p.as_rule() != Rule::kw_by),
                                true,
                            )?
                        }
                        _ => {}
                    }
                }
                if aggregates.is_empty() && by.is_empty() {
                    return Err(self.invalid(at, "summarize needs an aggregation or a by clause"));
                }
                Operator::Summarize { aggregates, by }
            }
            Rule::sort_op => {
                Operator::Sort(inner.map(|k| self.sort_key(k)).collect::<Result<_, _>>()?)
            }
            Rule::top_op => {
                let count = self.row_count(inner.next(), at)?;
                let key = match inner.next() {
                    Some(k) => self.sort_key(k)?,
                    None => return Err(self.invalid(at, "top needs by")),
                };
                Operator::Top { count, key }
            }
            Rule::take_op => Operator::Take(self.row_count(inner.next(), at)?),
            Rule::distinct_op => {
                if inner.peek().is_some_and(|p| p.as_rule() == Rule::star) {
                    Operator::Distinct(None)
                } else {
                    Operator::Distinct(Some(inner.map(|p| self.name(p)).collect::<Result<_, _>>()?))
                }
            }
            Rule::count_op => Operator::Count,
            Rule::join_op => {
                let mut kind = JoinKind::InnerUnique;
                let mut right = None;
                let mut on = Vec::new();
                for part in inner {
                    match part.as_rule() {
                        Rule::join_kind => {
                            let word = part.as_str().rsplit('=').next().unwrap_or("").trim();
                            kind = match word {
                                "inner" => JoinKind::Inner,
                                "innerunique" => JoinKind::InnerUnique,
                                "leftouter" => JoinKind::LeftOuter,
                                _ => {
                                    return Err(self.invalid(
                                        part.as_span().start(),
                                        format!("join kind '{word}' is not supported (inner, innerunique, leftouter are)"),
                                    ));
                                }
                            };
                        }
                        Rule::nested => right = Some(self.nested(part)?),
                        Rule::table => {
                            right = Some(Tabular {
                                source: self.source(part)?,
                                operators: Vec::new(),
                            })
                        }
                        Rule::join_key => on.push(self.join_key(part)?),
                        _ => {}
                    }
                }
                let right = right.ok_or_else(|| self.invalid(at, "join needs a right side"))?;
                Operator::Join {
                    kind,
                    right: Box::new(right),
                    on,
                }
            }
            Rule::union_op => {
                let args = self.union_args_from(inner)?;
                Operator::Union(args)
            }
            Rule::mv_expand_op => {
                let mut items = Vec::new();
                let mut limit = None;
                for part in inner {
                    match part.as_rule() {
                        Rule::mv_item => {
                            let named = self.named_expr(part, false, 0)?;
                            if named.expr.path().is_none() && !named_has_name(&named) {
                                return Err(self.invalid(
                                    named.expr.at,
                                    "mv-expand needs a column or name = expression",
                                ));
                            }
                            items.push(named);
                        }
                        Rule::mv_limit => {
                            let number = part.into_inner().find(|p| p.as_rule() == Rule::long_lit);
                            limit = number.and_then(|n| n.as_str().parse().ok());
                        }
                        _ => {}
                    }
                }
                Operator::MvExpand { items, limit }
            }
            Rule::parse_op => {
                let input = self.required_expr(inner.next(), at)?;
                let mut parts = Vec::new();
                for part in inner {
                    parts.push(match part.as_rule() {
                        Rule::star => ParsePart::Any,
                        Rule::string => ParsePart::Literal(decode_string(part.as_str())),
                        Rule::parse_column => {
                            let mut pieces = part.into_inner();
                            let name = match pieces.next() {
                                Some(n) => self.name(n)?,
                                None => continue,
                            };
                            let kind = pieces
                                .next()
                                .map_or(TypeName::String, |t| type_name(t.as_str()));
                            ParsePart::Column { name, kind }
                        }
                        _ => continue,
                    });
                }
                Operator::Parse { input, parts }
            }
            _ => return Err(self.invalid(at, "unknown tabular operator")),
        })
    }

    fn union_args_from<'i>(
        &self,
        pairs: impl Iterator<Item = Pair<'i, Rule>>,
    ) -> Result<Vec<Tabular>, KqlError> {
        pairs
            .map(|p| {
                Ok(match self.source(p)? {
                    Source::Nested(t) => *t,
                    source => Tabular {
                        source,
                        operators: Vec::new(),
                    },
                })
            })
            .collect()
    }

    fn join_key(&self, pair: Pair<'_, Rule>) -> Result<(String, String), KqlError> {
        let at = pair.as_span().start();
        let mut sides = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::name => {
                    let name = self.name(part)?;
                    return Ok((name.clone(), name));
                }
                Rule::side_column => {
                    let mut inner = part.into_inner();
                    let side = inner
                        .next()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default();
                    let name = match inner.next() {
                        Some(n) => self.name(n)?,
                        None => return Err(self.invalid(at, "expected a column")),
                    };
                    sides.push((side, name));
                }
                _ => {}
            }
        }
        match sides.as_slice() {
            [(a, left), (b, right)] if a == "$left" && b == "$right" => {
                Ok((left.clone(), right.clone()))
            }
            [(a, right), (b, left)] if a == "$right" && b == "$left" => {
                Ok((left.clone(), right.clone()))
            }
            _ => Err(self.invalid(
                at,
                "a join condition compares $left.column with $right.column",
            )),
        }
    }

    fn sort_key(&self, pair: Pair<'_, Rule>) -> Result<SortKey, KqlError> {
        let at = pair.as_span().start();
        let mut inner = pair.into_inner();
        let expr = self.required_expr(inner.next(), at)?;
        let mut descending = true;
        let mut nulls_first = None;
        for part in inner {
            match part.as_rule() {
                Rule::direction => descending = part.as_str() == "desc",
                Rule::nulls => {
                    nulls_first = Some(part.into_inner().any(|p| p.as_str() == "first"));
                }
                _ => {}
            }
        }
        // Kusto puts nulls last when descending and first when ascending, unless told.
        let nulls_first = nulls_first.unwrap_or(!descending);
        Ok(SortKey {
            expr,
            descending,
            nulls_first,
        })
    }

    /// The count of `take` and `top`: any expression that reads no column.
    fn row_count(&self, pair: Option<Pair<'_, Rule>>, at: usize) -> Result<Expr, KqlError> {
        let count = self.required_expr(pair, at)?;
        if count.reads_columns() {
            return Err(self.invalid(count.at, "a row count must be a constant"));
        }
        Ok(count)
    }

    fn required_expr(&self, pair: Option<Pair<'_, Rule>>, at: usize) -> Result<Expr, KqlError> {
        match pair {
            Some(p) => Ok(self.expr(p)?.expr),
            None => Err(self.invalid(at, "expected an expression")),
        }
    }

    fn named_exprs<'i>(
        &self,
        pairs: impl Iterator<Item = Pair<'i, Rule>>,
        derive_through_calls: bool,
    ) -> Result<Vec<NamedExpr>, KqlError> {
        let mut out: Vec<NamedExpr> = Vec::new();
        for (i, pair) in pairs.enumerate() {
            let mut named = self.named_expr(pair, derive_through_calls, i + 1)?;
            named.name = unique_name(named.name, out.iter().map(|n| n.name.as_str()));
            out.push(named);
        }
        Ok(out)
    }

    /// `name = expr` or `expr` (named after its column or member path, else `Column<n>`).
    fn named_expr(
        &self,
        pair: Pair<'_, Rule>,
        derive_through_calls: bool,
        ordinal: usize,
    ) -> Result<NamedExpr, KqlError> {
        let at = pair.as_span().start();
        let mut name = None;
        let mut expr = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::name => name = Some(self.name(part)?),
                Rule::expr => expr = Some(self.expr(part)?.expr),
                _ => {}
            }
        }
        let expr = expr.ok_or_else(|| self.invalid(at, "expected an expression"))?;
        let name = match name {
            Some(n) => n,
            None => derived_name(&expr, derive_through_calls)
                .unwrap_or_else(|| format!("Column{ordinal}")),
        };
        Ok(NamedExpr { name, expr })
    }

    fn aggregate(
        &self,
        pair: Pair<'_, Rule>,
        used: &mut Vec<String>,
    ) -> Result<NamedAggregate, KqlError> {
        let at = pair.as_span().start();
        let mut given = None;
        let mut call = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::name => given = Some(self.name(part)?),
                Rule::expr => {
                    let mut items = part.clone().into_inner();
                    match (items.next(), items.next()) {
                        (Some(only), None) if only.as_rule() == Rule::call => call = Some(only),
                        _ => {
                            return Err(self.invalid(
                                part.as_span().start(),
                                "summarize takes aggregation functions (count(), max(x), …)",
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        let call = call.ok_or_else(|| self.invalid(at, "expected an aggregation"))?;
        let call_at = call.as_span().start();
        let mut inner = call.into_inner();
        let function_name = inner
            .next()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let (aggregation, least, most, prefix) =
            Aggregation::lookup(&function_name).ok_or_else(|| {
                error_with_token(
                    self.text,
                    "InvalidQuery",
                    call_at,
                    &function_name,
                    &format!("'{function_name}' is not an aggregation function"),
                )
            })?;
        let mut args = Vec::new();
        let mut returned: Option<Vec<NamedExpr>> = Some(Vec::new());
        for (i, arg) in inner.enumerate() {
            match arg.as_rule() {
                Rule::star_arg
                    if i > 0
                        && matches!(aggregation, Aggregation::ArgMax | Aggregation::ArgMin) =>
                {
                    returned = None
                }
                Rule::expr
                    if i > 0
                        && matches!(aggregation, Aggregation::ArgMax | Aggregation::ArgMin) =>
                {
                    let expr = self.expr(arg)?.expr;
                    let name = derived_name(&expr, true).unwrap_or_else(|| format!("Column{i}"));
                    if let Some(list) = returned.as_mut() {
                        list.push(NamedExpr { name, expr });
                    }
                }
                Rule::expr => args.push(self.expr(arg)?.expr),
                _ => {
                    return Err(self.invalid(
                        arg.as_span().start(),
                        format!("unexpected argument to {function_name}()"),
                    ));
                }
            }
        }
        let count = args.len() + returned.as_ref().map_or(1, Vec::len);
        let count = if matches!(aggregation, Aggregation::ArgMax | Aggregation::ArgMin) {
            count
        } else {
            args.len()
        };
        if count < least || count > most {
            return Err(error_with_token(
                self.text,
                "InvalidQuery",
                call_at,
                &function_name,
                &format!("{function_name}() takes {least} to {most} arguments, not {count}"),
            ));
        }
        let name = match given {
            Some(n) => n,
            None => match aggregation {
                Aggregation::ArgMax | Aggregation::ArgMin => args
                    .first()
                    .and_then(|a| derived_name(a, true))
                    .unwrap_or_else(|| format!("{function_name}_")),
                Aggregation::Count | Aggregation::CountIf => prefix.to_owned(),
                _ => format!(
                    "{prefix}{}",
                    args.first()
                        .and_then(|a| derived_name(a, true))
                        .unwrap_or_default()
                ),
            },
        };
        let name = unique_name(name, used.iter().map(String::as_str));
        used.push(name.clone());
        Ok(NamedAggregate {
            name,
            aggregation,
            args,
            returned: if matches!(aggregation, Aggregation::ArgMax | Aggregation::ArgMin) {
                returned
            } else {
                Some(Vec::new())
            },
        })
    }

    fn name(&self, pair: Pair<'_, Rule>) -> Result<String, KqlError> {
        let pair = match pair.as_rule() {
            Rule::name => match pair.into_inner().next() {
                Some(p) => p,
                None => return Err(self.invalid(0, "expected a name")),
            },
            _ => pair,
        };
        Ok(match pair.as_rule() {
            Rule::bracket_name => pair
                .into_inner()
                .next()
                .map(|s| decode_string(s.as_str()))
                .unwrap_or_default(),
            _ => pair.as_str().to_owned(),
        })
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> Result<Node, KqlError> {
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, operand| {
                let operand = operand?;
                let at = op.as_span().start();
                match op.as_rule() {
                    Rule::neg => {
                        self.node(at, ExprKind::Negate(Box::new(operand.expr)), operand.depth)
                    }
                    _ => Ok(operand),
                }
            })
            .map_postfix(|operand, op| {
                let operand = operand?;
                self.postfix(operand, op)
            })
            .map_infix(|left, op, right| {
                let (left, right) = (left?, right?);
                let at = left.expr.at;
                let op = binary_op(op.as_str());
                let depth = left.depth.max(right.depth);
                self.node(
                    at,
                    ExprKind::Binary(op, Box::new(left.expr), Box::new(right.expr)),
                    depth,
                )
            })
            .parse(pair.into_inner())
    }

    fn node(&self, at: usize, kind: ExprKind, child_depth: usize) -> Result<Node, KqlError> {
        let depth = child_depth + 1;
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(self.invalid(
                at,
                format!("the expression is nested deeper than {MAX_EXPRESSION_DEPTH}"),
            ));
        }
        Ok(Node {
            expr: Expr { kind, at },
            depth,
        })
    }

    fn postfix(&self, operand: Node, op: Pair<'_, Rule>) -> Result<Node, KqlError> {
        let at = operand.expr.at;
        let rule = op.as_rule();
        let op_text = op.as_str().to_owned();
        let mut inner = op.into_inner();
        match rule {
            Rule::member => {
                let name = match inner.next() {
                    Some(n) => self.name(n)?,
                    None => return Err(self.invalid(at, "expected a member name")),
                };
                self.node(
                    at,
                    ExprKind::Member(Box::new(operand.expr), name),
                    operand.depth,
                )
            }
            Rule::index => {
                let index = match inner.next() {
                    Some(p) => self.expr(p)?,
                    None => return Err(self.invalid(at, "expected an index")),
                };
                let depth = operand.depth.max(index.depth);
                self.node(
                    at,
                    ExprKind::Index(Box::new(operand.expr), Box::new(index.expr)),
                    depth,
                )
            }
            Rule::in_list => {
                let word = inner
                    .next()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let mut depth = operand.depth;
                let mut list = Vec::new();
                for item in inner {
                    let node = self.expr(item)?;
                    depth = depth.max(node.depth);
                    list.push(node.expr);
                }
                self.node(
                    at,
                    ExprKind::In {
                        value: Box::new(operand.expr),
                        list,
                        negated: word.starts_with('!'),
                        ignore_case: word.ends_with('~'),
                    },
                    depth,
                )
            }
            Rule::between => {
                let negated = op_text.starts_with('!');
                let mut bounds = inner.filter(|p| p.as_rule() == Rule::expr);
                let (Some(low), Some(high)) = (bounds.next(), bounds.next()) else {
                    return Err(self.invalid(at, "between needs (low .. high)"));
                };
                let (low, high) = (self.expr(low)?, self.expr(high)?);
                let depth = operand.depth.max(low.depth).max(high.depth);
                self.node(
                    at,
                    ExprKind::Between {
                        value: Box::new(operand.expr),
                        low: Box::new(low.expr),
                        high: Box::new(high.expr),
                        negated,
                    },
                    depth,
                )
            }
            _ => Err(self.invalid(at, "unexpected operator")),
        }
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Result<Node, KqlError> {
        let at = pair.as_span().start();
        let literal = |value: Scalar| {
            Ok(Node {
                expr: Expr {
                    kind: ExprKind::Literal(value),
                    at,
                },
                depth: 1,
            })
        };
        match pair.as_rule() {
            Rule::paren => match pair.into_inner().next() {
                Some(inner) => self.expr(inner),
                None => Err(self.invalid(at, "empty parentheses")),
            },
            Rule::name_ref => {
                let name = match pair.into_inner().next() {
                    Some(n) => self.name(n)?,
                    None => return Err(self.invalid(at, "expected a name")),
                };
                match self.lets.get(&name) {
                    Some((value, size)) => {
                        let inlined = self.inlined.get().saturating_add(*size);
                        if inlined > MAX_INLINED_NODES {
                            return Err(self.invalid(at, "the let values are used too often"));
                        }
                        self.inlined.set(inlined);
                        Ok(Node {
                            expr: value.expr.clone(),
                            depth: value.depth,
                        })
                    }
                    None => Ok(Node {
                        expr: Expr {
                            kind: ExprKind::Column(name),
                            at,
                        },
                        depth: 1,
                    }),
                }
            }
            Rule::call => self.call(pair),
            Rule::string => literal(Scalar::Str(decode_string(pair.as_str()))),
            Rule::long_lit => match pair.as_str().parse::<i64>() {
                Ok(n) => literal(Scalar::Long(n)),
                // Kusto reads a too-large integer literal as a real.
                Err(_) => literal(
                    pair.as_str()
                        .parse::<f64>()
                        .map_or(Scalar::Null, Scalar::Real),
                ),
            },
            Rule::real_lit => literal(
                pair.as_str()
                    .parse::<f64>()
                    .map_or(Scalar::Null, Scalar::Real),
            ),
            Rule::bool_lit => literal(Scalar::Bool(pair.as_str() == "true")),
            Rule::timespan_lit => {
                let text = pair.as_str();
                let split = text
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(text.len());
                let (number, unit) = text.split_at(split);
                let value = number.parse::<f64>().ok().zip(timespan_unit(unit));
                match value {
                    Some((n, unit)) if (n * unit).abs() < 9.2e18 => {
                        literal(Scalar::Timespan((n * unit).round() as i64))
                    }
                    _ => Err(self.invalid(at, "timespan out of range")),
                }
            }
            Rule::datetime_lit => {
                let body = pair
                    .into_inner()
                    .next()
                    .map(|b| {
                        b.as_str()
                            .trim()
                            .trim_matches(|c| c == '"' || c == '\'')
                            .to_owned()
                    })
                    .unwrap_or_default();
                if body == "null" {
                    return literal(Scalar::Null);
                }
                match parse_datetime(&body) {
                    Some(t) => literal(Scalar::Datetime(t)),
                    None => Err(error_with_token(
                        self.text,
                        "InvalidQuery",
                        at,
                        &body,
                        "not a datetime literal",
                    )),
                }
            }
            Rule::dynamic_lit => {
                let json = pair
                    .into_inner()
                    .next()
                    .map(json_value)
                    .unwrap_or(Value::Null);
                literal(Scalar::dynamic(json))
            }
            Rule::typed_null => literal(Scalar::Null),
            _ => Err(self.invalid(at, "unexpected expression")),
        }
    }

    fn call(&self, pair: Pair<'_, Rule>) -> Result<Node, KqlError> {
        let at = pair.as_span().start();
        let mut inner = pair.into_inner();
        let name = inner
            .next()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let Some((function, least, most)) = Function::lookup(&name) else {
            let message = if Aggregation::lookup(&name).is_some() {
                format!("'{name}' is an aggregation: use it in summarize")
            } else {
                format!("unknown function '{name}'")
            };
            return Err(error_with_token(
                self.text,
                "InvalidQuery",
                at,
                &name,
                &message,
            ));
        };
        let mut args = Vec::new();
        let mut depth = 0;
        for arg in inner {
            match arg.as_rule() {
                Rule::expr => {
                    let node = self.expr(arg)?;
                    depth = depth.max(node.depth);
                    args.push(node.expr);
                }
                Rule::typeof_arg => {
                    let kind = arg
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::type_name)
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default();
                    args.push(Expr {
                        kind: ExprKind::Literal(Scalar::Str(kind)),
                        at,
                    });
                }
                _ => {
                    return Err(self.invalid(
                        arg.as_span().start(),
                        format!("unexpected argument to {name}()"),
                    ));
                }
            }
        }
        if args.len() < least || args.len() > most {
            return Err(error_with_token(
                self.text,
                "InvalidQuery",
                at,
                &name,
                &format!(
                    "{name}() takes {least} to {most} arguments, not {}",
                    args.len()
                ),
            ));
        }
        if function == Function::Case && args.len() % 2 == 0 {
            return Err(error_with_token(
                self.text,
                "InvalidQuery",
                at,
                &name,
                "case() takes condition, value pairs and an else value",
            ));
        }
        let pattern = match function.pattern_argument().and_then(|i| args.get(i)) {
            Some(Expr {
                kind: ExprKind::Literal(Scalar::Str(text)),
                at: pattern_at,
            }) => {
                let source = if function == Function::Trim
                    || function == Function::TrimStart
                    || function == Function::TrimEnd
                {
                    format!("(?:{text})")
                } else {
                    text.clone()
                };
                match Regex::new(&source) {
                    Ok(regex) => Some(Pattern(regex)),
                    Err(e) => {
                        return Err(
                            self.invalid(*pattern_at, format!("bad regular expression: {e}"))
                        );
                    }
                }
            }
            Some(_) => {
                return Err(
                    self.invalid(at, format!("{name}() needs a literal regular expression"))
                );
            }
            None => None,
        };
        self.node(
            at,
            ExprKind::Call {
                function,
                args,
                pattern,
            },
            depth,
        )
    }
}

fn node_count(expr: &Expr) -> usize {
    let children = match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Column(_) => 0,
        ExprKind::Member(base, _) | ExprKind::Negate(base) => node_count(base),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => node_count(a) + node_count(b),
        ExprKind::In { value, list, .. } => {
            node_count(value) + list.iter().map(node_count).sum::<usize>()
        }
        ExprKind::Between {
            value, low, high, ..
        } => node_count(value) + node_count(low) + node_count(high),
        ExprKind::Call { args, .. } => args.iter().map(node_count).sum(),
    };
    children + 1
}

fn named_has_name(named: &NamedExpr) -> bool {
    !named.name.starts_with("Column")
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_where
            | Rule::kw_extend
            | Rule::kw_project
            | Rule::kw_project_away
            | Rule::kw_project_rename
            | Rule::kw_summarize
            | Rule::kw_sort
            | Rule::kw_by
            | Rule::kw_top
            | Rule::kw_take
            | Rule::kw_distinct
            | Rule::kw_count
            | Rule::kw_join
            | Rule::kw_on
            | Rule::kw_union
            | Rule::kw_mv_expand
            | Rule::kw_parse
            | Rule::kw_with
    )
}

fn binary_op(text: &str) -> BinaryOp {
    let (negated, word) = match text.strip_prefix('!') {
        Some(rest) if rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) => (true, rest),
        _ => (false, text),
    };
    let text_op = |op| BinaryOp::Text(op, negated);
    match word {
        "or" => BinaryOp::Or,
        "and" => BinaryOp::And,
        "==" => BinaryOp::Eq,
        "!=" | "<>" => BinaryOp::Ne,
        "=~" => BinaryOp::EqCi,
        "!~" => BinaryOp::NeCi,
        "<" => BinaryOp::Lt,
        "<=" => BinaryOp::Le,
        ">" => BinaryOp::Gt,
        ">=" => BinaryOp::Ge,
        "+" => BinaryOp::Add,
        "-" => BinaryOp::Sub,
        "*" => BinaryOp::Mul,
        "/" => BinaryOp::Div,
        "%" => BinaryOp::Mod,
        "contains" => text_op(TextOp::Contains {
            case_sensitive: false,
        }),
        "contains_cs" => text_op(TextOp::Contains {
            case_sensitive: true,
        }),
        "has" => text_op(TextOp::Has {
            case_sensitive: false,
        }),
        "has_cs" => text_op(TextOp::Has {
            case_sensitive: true,
        }),
        "hasprefix" => text_op(TextOp::HasPrefix),
        "hassuffix" => text_op(TextOp::HasSuffix),
        "startswith" => text_op(TextOp::StartsWith {
            case_sensitive: false,
        }),
        "startswith_cs" => text_op(TextOp::StartsWith {
            case_sensitive: true,
        }),
        "endswith" => text_op(TextOp::EndsWith {
            case_sensitive: false,
        }),
        "endswith_cs" => text_op(TextOp::EndsWith {
            case_sensitive: true,
        }),
        // `matches regex` (two words, one operator rule).
        _ => BinaryOp::MatchesRegex,
    }
}

fn type_name(text: &str) -> TypeName {
    match text {
        "long" | "int" => TypeName::Long,
        "real" | "double" | "decimal" => TypeName::Real,
        "datetime" => TypeName::Datetime,
        "timespan" => TypeName::Timespan,
        "bool" | "boolean" => TypeName::Bool,
        "dynamic" => TypeName::Dynamic,
        _ => TypeName::String,
    }
}

/// The column name Kusto gives an unnamed expression: a column's own name, a member path joined
/// with `_` (`properties.status` → `properties_status`), and, for `by` and aggregations, the name
/// of a function's first argument (`bin(timeGenerated, 1h)` → `timeGenerated`).
fn derived_name(expr: &Expr, through_calls: bool) -> Option<String> {
    if let Some(path) = expr.path() {
        return Some(path.join("_"));
    }
    match &expr.kind {
        ExprKind::Call { args, .. } if through_calls => {
            args.iter().find_map(|a| derived_name(a, through_calls))
        }
        _ => None,
    }
}

/// `name`, or `name1`, `name2`, … if taken.
pub(super) fn unique_name<'a>(
    name: String,
    taken: impl Iterator<Item = &'a str> + Clone,
) -> String {
    if !taken.clone().any(|t| t == name) {
        return name;
    }
    (1..)
        .map(|n| format!("{name}{n}"))
        .find(|candidate| !taken.clone().any(|t| t == candidate))
        .unwrap_or(name)
}

fn json_value(pair: Pair<'_, Rule>) -> Value {
    let pair = match pair.as_rule() {
        Rule::json => match pair.into_inner().next() {
            Some(p) => p,
            None => return Value::Null,
        },
        _ => pair,
    };
    match pair.as_rule() {
        Rule::json_object => {
            let mut object = Map::new();
            for member in pair.into_inner() {
                let mut kv = member.into_inner();
                if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                    object.insert(decode_string(k.as_str()), json_value(v));
                }
            }
            Value::Object(object)
        }
        Rule::json_array => Value::Array(pair.into_inner().map(json_value).collect()),
        Rule::string => Value::String(decode_string(pair.as_str())),
        Rule::json_number => serde_json::from_str(pair.as_str()).unwrap_or(Value::Null),
        Rule::bool_lit => Value::Bool(pair.as_str() == "true"),
        _ => Value::Null,
    }
}

/// The text of a string literal: `"…"` and `'…'` with backslash escapes, `@"…"` verbatim (a
/// doubled quote is one quote).
fn decode_string(literal: &str) -> String {
    if let Some(body) = literal.strip_prefix('@') {
        let quote = if body.starts_with('"') { "\"" } else { "'" };
        let inner = body
            .strip_prefix(quote)
            .and_then(|b| b.strip_suffix(quote))
            .unwrap_or(body);
        return inner.replace(&quote.repeat(2), quote);
    }
    let inner = literal
        .get(1..literal.len().saturating_sub(1))
        .unwrap_or("");
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn syntax_error(text: &str, error: &pest::error::Error<Rule>) -> KqlError {
    let at = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((start, _)) => start,
    };
    let token = token_at(text, at);
    // An unknown word where an operator belongs is an unknown operator, not bad syntax.
    let before = text.get(..at).unwrap_or("").trim_end();
    if before.ends_with('|') && token.chars().next().is_some_and(|c| c.is_alphabetic()) {
        return error_with_token(
            text,
            "InvalidQuery",
            at,
            &token,
            &format!("unknown tabular operator '{token}'"),
        );
    }
    let message = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } if !positives.is_empty() => {
            let expected: Vec<String> = positives.iter().take(6).map(|r| describe(*r)).collect();
            format!("syntax error: expected {}", expected.join(", "))
        }
        _ => "syntax error".to_owned(),
    };
    error_with_token(text, "ParserFailure", at, &token, &message)
}

fn describe(rule: Rule) -> String {
    let name = format!("{rule:?}");
    name.trim_start_matches("kw_")
        .trim_end_matches("_op")
        .replace('_', " ")
}

/// The token that starts at byte `at`: a word, a number, a quoted string, or an operator.
fn token_at(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or("");
    let mut chars = rest.char_indices();
    let Some((_, first)) = chars.next() else {
        return String::new();
    };
    let end = if first.is_alphanumeric() || first == '_' || first == '$' {
        rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(rest.len())
    } else if first == '"' || first == '\'' {
        rest[1..]
            .find(first)
            .map_or_else(|| rest.find('\n').unwrap_or(rest.len()), |i| i + 2)
    } else {
        let two: String = rest.chars().take(2).collect();
        if ["==", "!=", "=~", "!~", "<=", ">=", "<>", ".."].contains(&two.as_str()) {
            two.len()
        } else {
            first.len_utf8()
        }
    };
    rest[..end].to_owned()
}

pub(super) fn error_at(text: &str, code: &'static str, at: usize, message: &str) -> KqlError {
    let token = token_at(text, at);
    error_with_token(text, code, at, &token, message)
}

fn error_with_token(
    text: &str,
    code: &'static str,
    at: usize,
    token: &str,
    message: &str,
) -> KqlError {
    let at = at.min(text.len());
    let mut at = at;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let position = before[line_start..].chars().count() + 1;
    KqlError {
        code,
        message: message.to_owned(),
        line,
        position,
        token: token.to_owned(),
    }
}
