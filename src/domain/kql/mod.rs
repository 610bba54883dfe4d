//! The Kusto Query Language subset that Azure Resource Graph queries use: parsed into a [`Query`],
//! run over rows that a [`Source`] streams, and paged as Resource Graph pages results.
//!
//! The source is told which conditions of the query's leading `where` clauses it may test itself
//! ([`Constraint`]): it may return any superset of the matching rows, because every row is tested
//! again here. That is how a database answers the selective part of a query without this module
//! knowing any database. When the query names every column it reads before an operator that
//! replaces the columns (`project`, `summarize`, `count`, `distinct`), the source is told those
//! paths too ([`Scan::reads`]), so it can build only that much of each row.
//!
//! # Parsing
//!
//! No crate parses KQL, so the grammar is written down in `kql.pest` and parsed with `pest`
//! (a PEG generator: the grammar file is the documentation, and errors come with the byte offset
//! that becomes the line and 1-based character position of [`KqlError`]). Operator precedence,
//! from loosest: `or`; `and`; comparisons (`==` `!=` `=~` `!~` `<` `<=` `>` `>=`, the string
//! operators, `matches regex`, `in`, `between`); `+ -`; `* / %`; unary `-`; member access
//! `.name`, `['name']`, `[0]`. `let` names (scalars only) are replaced by their expressions.
//! Queries longer than [`MAX_QUERY_LENGTH`], brackets nested deeper than [`MAX_NESTING`] and
//! expression trees deeper than [`MAX_EXPRESSION_DEPTH`] are refused before anything recurses,
//! and `let` names whose uses would copy more than [`MAX_INLINED_NODES`] nodes are refused.
//!
//! # Supported
//!
//! - Tabular operators: `where`/`filter`, `extend`, `project`, `project-away` (with `*`
//!   wildcards), `project-rename`, `summarize … by …`, `order by`/`sort by` (`asc`/`desc`,
//!   `nulls first`/`last`; descending by default), `top N by`, `take`/`limit`, `distinct`,
//!   `count`, `join kind=innerunique|inner|leftouter (…) on a, $left.b == $right.c` (a right
//!   column whose name the left has gets a numeric suffix: `id1`), `union` (also leading),
//!   `mv-expand [name =] expr [to typeof(t)] [limit n]` (side by side for several; the
//!   elements stay dynamic whatever `typeof` says; a row whose array is empty is dropped),
//!   `parse expr with * "lit" name:type …` (simple kind).
//! - Aggregations: `count`, `countif`, `dcount` (exact), `make_set`, `make_list` (with a size
//!   limit), `min`, `max`, `sum`, `avg`, `arg_max`/`arg_min` (`*` or listed columns),
//!   `take_any`/`any`. Unnamed outputs are named as Kusto names them (`count_`, `min_x`,
//!   `set_x`, `list_x`, `dcount_x`, `take_any_x`; member paths joined with `_`).
//! - Scalar functions: `tostring`, `toint`, `tolong`, `toreal`/`todouble`, `todatetime`,
//!   `totimespan`, `tobool`, `parse_json`/`todynamic`, `extract` (with `typeof()`), `split`,
//!   `strcat`, `strlen`, `substring`, `tolower`, `toupper`, `trim`/`trim_start`/`trim_end`,
//!   `replace_string`, `replace_regex`, `iff`/`iif`, `case`, `coalesce`, `isnull`/`isnotnull`,
//!   `isempty`/`isnotempty`, `array_length`, `bag_keys`, `pack_array`, `ago`, `now`,
//!   `startofday`, `bin`/`floor`, `format_datetime`, `not`, `abs`, `round`.
//! - Literals: `'…'` and `"…"` with backslash escapes, `@"…"` verbatim, integers (long), reals,
//!   `true`/`false`, timespans (`30m`, `1h`, `7d`, `1.5s`, `100ms`), `datetime(…)`,
//!   `dynamic(…)`, `long(null)` and the like; `//` comments.
//!
//! Not supported (refused as `ParserFailure` or `InvalidQuery`): tabular `let`, `print`,
//! `datatable`, `mv-apply`, `make-series`, `render`, `as`, `facet`, `sample`, `invoke`, other
//! join kinds, `parse kind=regex`, `has_any`/`has_all`, functions not listed above.
//!
//! # Semantics kept from Kusto
//!
//! Comparisons of null or mismatched types are null (a `where` drops the row), never an error; a
//! string compared with a missing member compares with `""`. A dynamic string compared with a
//! datetime reads as an RFC 3339 time, so `properties.timeGenerated > ago(1h)` works on the JSON
//! rows. `contains`, `has`, `startswith`, `endswith` and `=~` ignore case; `has` matches whole
//! terms. `count()` is a long. Row order is the source's unless sorted; groups come in order of
//! first appearance.

mod ast;
mod engine;
mod eval;
mod functions;
mod parser;
#[cfg(test)]
mod tests;
mod value;

use std::fmt;

use serde_json::{Map, Value};

pub use parser::{MAX_EXPRESSION_DEPTH, MAX_INLINED_NODES, MAX_NESTING, MAX_QUERY_LENGTH};

/// One row of a table: column name → value.
pub type Row = Map<String, Value>;

/// A parsed query: one tabular expression (a table and its pipeline of operators), after any
/// `let` statements.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    tabular: ast::Tabular,
    /// The text, for the line and position of errors found while running (an unknown table).
    text: String,
}

/// Why a query was refused, with where: Resource Graph's `BadRequest` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KqlError {
    /// `ParserFailure` (the text does not parse) or `InvalidQuery` (it parses but means nothing
    /// this engine can run: an unknown table, function or operator, wrong arguments).
    pub code: &'static str,
    pub message: String,
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based character position of the offending token within its line.
    pub position: usize,
    /// The offending token as written (empty at the end of the text).
    pub token: String,
}

impl fmt::Display for KqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, position {} ('{}'): {}",
            self.code, self.line, self.position, self.token, self.message
        )
    }
}

impl std::error::Error for KqlError {}

/// A condition on one column that every row of the answer satisfies, taken from a `where` clause
/// that comes before any operator that could change the column.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The column and, for dynamic columns, the member path, as written:
    /// `properties.status.severity` and `properties['status']['severity']` are both
    /// `["properties", "status", "severity"]`.
    pub column: Vec<String>,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `==`, `in` (`ignore_case: false`), `=~`, `in~` (`ignore_case: true`): the value is one of
    /// these.
    OneOf {
        values: Vec<Value>,
        ignore_case: bool,
    },
    /// `<`, `<=`, `>`, `>=` against a number or a datetime (an RFC 3339 string, after `ago()`,
    /// `now()` and `datetime()` were evaluated).
    Compare { op: CompareOp, value: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// What a query asks of one table, known before any row is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Conditions every row of the answer satisfies; a source tests whichever it can.
    pub constraints: Vec<Constraint>,
    /// The columns, and member paths within them, that the query reads from the table's rows
    /// (`["properties", "status", "severity"]`); `None` when it may read any of them (it returns
    /// the table's columns without naming them, or reads whole rows). A row must carry the whole
    /// value at each of these paths; whatever lies on none of them may be left out.
    pub reads: Option<Vec<Vec<String>>>,
}

/// Where rows come from.
pub trait Source {
    type Error;

    /// The rows of `table` (as written in the query, matched case-insensitively by the source:
    /// `securityresources`, `resources`), narrowed by whichever of the scan's constraints the
    /// source can test and, where it helps, cut to the paths the scan reads. Rows are pulled one
    /// at a time, so a source should read in bounded batches.
    #[allow(clippy::type_complexity)]
    fn rows<'a>(
        &'a mut self,
        table: &str,
        scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<Row, Self::Error>> + 'a>, Self::Error>;

    /// [`Source::rows`], for a query whose first tabular operator after `where` and `extend` is a
    /// `summarize` that only counts rows or gathers distinct values: each item is a row and how
    /// many identical rows it stands for, so a source may hand a run of equal rows over once.
    /// The default gives every row once.
    #[allow(clippy::type_complexity)]
    fn counted_rows<'a>(
        &'a mut self,
        table: &str,
        scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<(Row, u64), Self::Error>> + 'a>, Self::Error> {
        Ok(Box::new(
            self.rows(table, scan)?.map(|row| row.map(|row| (row, 1))),
        ))
    }

    /// Whether `table` exists (an unknown table is an `InvalidQuery` before any row is read).
    fn has_table(&self, table: &str) -> bool;
}

/// Which rows of the result to return: Resource Graph's `$skip` and `$top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub skip: u64,
    pub top: u64,
}

/// The type of a result column, as Resource Graph names it in `resultFormat: table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Integer,
    Number,
    Boolean,
    Datetime,
    Object,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
}

/// One window of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub columns: Vec<Column>,
    /// The window's rows, each in `columns` order.
    pub rows: Vec<Vec<Value>>,
    /// How many rows the whole result has.
    pub total_records: u64,
}

#[derive(Debug)]
pub enum ExecError<E> {
    Query(KqlError),
    Source(E),
}

/// Parses a query (with its `let` statements and comments).
pub fn parse(text: &str) -> Result<Query, KqlError> {
    Ok(Query {
        tabular: parser::parse_query(text)?,
        text: text.to_owned(),
    })
}

/// Runs `query` over `source` and returns the rows of `window`. Operators that need every row
/// (`summarize`, `count`, `distinct`, `order by`) hold only their state (groups, distinct keys,
/// or the `skip + top` first rows of the order), never the whole input.
pub fn execute<S: Source>(
    query: &Query,
    source: &mut S,
    window: Window,
    now: super::Timestamp,
) -> Result<Output, ExecError<S::Error>> {
    let cx = eval::Context { now: now.micros() };
    engine::run(&query.tabular, &query.text, source, window, cx)
}
