//! The syntax tree of a parsed query. `let` names are already replaced by their expressions and
//! every output column already has its name (given, or derived as Kusto derives it).

use regex::Regex;

use super::functions::{Aggregation, Function};
use super::value::Scalar;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tabular {
    pub source: Source,
    pub operators: Vec<Operator>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Source {
    /// A table, with the byte offset of its name (for "unknown table").
    Table {
        name: String,
        at: usize,
    },
    Union(Vec<Tabular>),
    Nested(Box<Tabular>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operator {
    Where(Expr),
    Extend(Vec<NamedExpr>),
    Project(Vec<NamedExpr>),
    /// Column names, `*` standing for any run of characters.
    ProjectAway(Vec<String>),
    /// (new name, old name).
    ProjectRename(Vec<(String, String)>),
    Summarize {
        aggregates: Vec<NamedAggregate>,
        by: Vec<NamedExpr>,
    },
    Sort(Vec<SortKey>),
    Top {
        count: Expr,
        key: SortKey,
    },
    Take(Expr),
    /// `None` for `distinct *`.
    Distinct(Option<Vec<String>>),
    Count,
    Join {
        kind: JoinKind,
        right: Box<Tabular>,
        /// (left column, right column).
        on: Vec<(String, String)>,
    },
    Union(Vec<Tabular>),
    MvExpand {
        items: Vec<NamedExpr>,
        limit: Option<u64>,
    },
    Parse {
        input: Expr,
        parts: Vec<ParsePart>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JoinKind {
    /// Kusto's default: the first left row of each key joins with every matching right row.
    InnerUnique,
    Inner,
    LeftOuter,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ParsePart {
    /// `*`: skip anything up to the next literal.
    Any,
    Literal(String),
    Column {
        name: String,
        kind: TypeName,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TypeName {
    String,
    Long,
    Real,
    Datetime,
    Timespan,
    Bool,
    Dynamic,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct NamedExpr {
    pub name: String,
    pub expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct NamedAggregate {
    pub name: String,
    pub aggregation: Aggregation,
    pub args: Vec<Expr>,
    /// `arg_max`/`arg_min`: the other columns to return (`None` for `*`).
    pub returned: Option<Vec<NamedExpr>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Expr {
    pub kind: ExprKind,
    /// Byte offset in the query text.
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ExprKind {
    Literal(Scalar),
    Column(String),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    In {
        value: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        ignore_case: bool,
    },
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Call {
        function: Function,
        args: Vec<Expr>,
        /// The regular expression argument, compiled once when it is a literal.
        pattern: Option<Pattern>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    EqCi,
    NeCi,
    Lt,
    Le,
    Gt,
    Ge,
    /// `contains`, `has`, `startswith`, … (the text after an optional `!`, and whether it had one).
    Text(TextOp, bool),
    MatchesRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextOp {
    Contains { case_sensitive: bool },
    Has { case_sensitive: bool },
    HasPrefix,
    HasSuffix,
    StartsWith { case_sensitive: bool },
    EndsWith { case_sensitive: bool },
}

/// A compiled regular expression (compared by its text).
#[derive(Debug, Clone)]
pub(super) struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Expr {
    /// The column and member path this expression names (`properties.status.severity`,
    /// `properties['status']`), if it is nothing but that.
    pub(super) fn path(&self) -> Option<Vec<String>> {
        match &self.kind {
            ExprKind::Column(name) => Some(vec![name.clone()]),
            ExprKind::Member(base, name) => {
                let mut path = base.path()?;
                path.push(name.clone());
                Some(path)
            }
            ExprKind::Index(base, key) => match &key.kind {
                ExprKind::Literal(Scalar::Str(name)) => {
                    let mut path = base.path()?;
                    path.push(name.clone());
                    Some(path)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the value depends on the row (a column appears in it).
    pub(super) fn reads_columns(&self) -> bool {
        match &self.kind {
            ExprKind::Literal(_) => false,
            ExprKind::Column(_) => true,
            ExprKind::Member(base, _) | ExprKind::Negate(base) => base.reads_columns(),
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
                a.reads_columns() || b.reads_columns()
            }
            ExprKind::In { value, list, .. } => {
                value.reads_columns() || list.iter().any(Expr::reads_columns)
            }
            ExprKind::Between {
                value, low, high, ..
            } => value.reads_columns() || low.reads_columns() || high.reads_columns(),
            ExprKind::Call { args, .. } => args.iter().any(Expr::reads_columns),
        }
    }
}
