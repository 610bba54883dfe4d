//! `$filter` and `$orderby` of the list routes: checked against a list's documented properties,
//! then turned into diesel conditions in which every value from the request is a bind parameter.
//!
//! This module holds what every list shares: the [`List`] trait, the checker, skip tokens and the
//! macros that build keyset queries. Each list implements [`List`] beside its rows, with its
//! properties, sort keys, `Listing::query` and a `listing` constructor: `store::findings`
//! (sub-assessments), `store::scans` and `store::images`.
//!
//! A [`Listing`] is the checked form. It is built before the database is touched (a bad filter is a
//! 400 without taking a connection), it is `Send + Clone`, and its `query` builds the boxed,
//! filtered, ordered query inside the database closure (the list's `list` function adds the scope,
//! the selection and the limit). Skip tokens are `[fingerprint, sort key, id]` (`[fingerprint, id]`
//! when the order is the id): the fingerprint is a short hash of the list, the normalised `$filter`
//! and the `$orderby`, so a token is refused by any other listing, and the next page holds the rows
//! strictly after (key, id) in the chosen direction. Nullable sort columns sort as if NULL were -1
//! (smaller than every timestamp).
//!
//! For images, for example (a list route writes the `listing` and the `store::run` call;
//! `api::paging::keyset_page` does the rest):
//!
//! ```ignore
//! use crate::api::odata::QueryOptions;
//! use crate::store;
//!
//! let options = QueryOptions::parse(params.filter.as_deref(), params.orderby.as_deref())?;
//! let mut listing = store::images::listing(options.filter.as_ref(), options.orderby.as_ref())?; // 400 InvalidFilter / InvalidOrderBy
//! let page = query.page(listing.token_len())?;                                                  // the token's shape
//! if let Some(token) = &page.after {
//!     listing = listing.after(token)?;                                                         // 400 InvalidSkipToken
//! }
//! let (top, tokens) = (page.top, listing.clone());
//! let rows = store::run(&state.pool, move |c| {
//!     store::images::list(c, &scope, &listing, top + 1) // the scope's rows the listing keeps, in its order
//! })
//! .await?;
//! let page = paginate(rows, top, |row| tokens.token(row), link, render);
//! ```
//!
//! (`FilterError` converts into `ApiError` in `api::odata`.)

use std::fmt;

use diesel::expression::{
    AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate,
};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::Bool;
use sha2::{Digest as _, Sha256};

use super::MultiBackend;
use crate::domain::odata::{CompareOp, Direction, Expr, Literal, OrderBy, Value};

/// A boolean condition on table `T`.
pub type Condition<T> = Box<dyn BoxableExpression<T, MultiBackend, SqlType = Bool>>;

/// Why a `$filter`, `$orderby` or `$skipToken` is refused; `message` says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{message}")]
    Filter { position: usize, message: String },
    #[error("{message}")]
    OrderBy { position: usize, message: String },
    #[error("the skip token was made for another $filter or $orderby")]
    SkipToken,
}

/// "{what} at position {position}; {hint}".
fn filter_error(position: usize, what: impl fmt::Display, hint: &str) -> FilterError {
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    };
    FilterError::Filter {
        position,
        message: format!("{what} at position {position}{hint}"),
    }
}

/// Its first use, and its second (values that are `Copy` need no clone).
pub(super) fn twice<T: Clone>(value: T) -> (T, T) {
    (value.clone(), value)
}

// ---------------------------------------------------------------------------------------------
// The checked form, shared by every list

/// A test of one column. Comparisons hold only for values; `ne` also holds for NULL (OData's
/// `null ne 'x'` is true), so every test is true or false and `not` stays exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Test<V> {
    Compare(CompareOp, V),
    In(Vec<V>),
    /// `eq null` (true) or `ne null` (false).
    IsNull(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node<L> {
    Leaf(L),
    Const(bool),
    Not(Box<Node<L>>),
    And(Box<Node<L>>, Box<Node<L>>),
    Or(Box<Node<L>>, Box<Node<L>>),
}

impl<L> Node<L> {
    fn map<M>(self, f: &impl Fn(L) -> M) -> Node<M> {
        match self {
            Self::Leaf(l) => Node::Leaf(f(l)),
            Self::Const(b) => Node::Const(b),
            Self::Not(a) => Node::Not(Box::new(a.map(f))),
            Self::And(a, b) => Node::And(Box::new(a.map(f)), Box::new(b.map(f))),
            Self::Or(a, b) => Node::Or(Box::new(a.map(f)), Box::new(b.map(f))),
        }
    }

    /// The `or` of the nodes; of none, false.
    pub(super) fn any(mut nodes: impl Iterator<Item = Node<L>>) -> Node<L> {
        let first = nodes.next().unwrap_or(Node::Const(false));
        nodes.fold(first, |a, b| Node::Or(Box::new(a), Box::new(b)))
    }
}

/// How a property's values are checked, and which leaf they make.
pub enum Kind<L> {
    /// A text column: any comparison with a string (or null).
    Text(fn(Test<String>) -> L),
    /// A microsecond BIGINT column: any comparison with a date-time (or null).
    Time(fn(Test<i64>) -> L),
    /// A NOT NULL boolean: eq, ne, in with true/false; the leaf gets the value that matches.
    Flag(fn(bool) -> L),
    /// One of a fixed set of names (eq, ne, in); the leaf gets the names that match.
    Choice(&'static [&'static str], fn(Vec<String>) -> L),
    /// Anything else, checked by the function.
    Custom(fn(&Comparison<'_>) -> Result<Node<L>, FilterError>),
}

/// A documented property of a list.
pub struct Property<L> {
    pub path: &'static str,
    pub kind: Kind<L>,
}

/// A comparison as the checks see it: `in` has many values, the others one.
pub struct Comparison<'a> {
    pub path: &'a str,
    /// `None` for `in`.
    pub op: Option<CompareOp>,
    pub values: &'a [Value],
}

impl Comparison<'_> {
    pub(super) fn type_error(&self, value: &Value, expected: &str) -> FilterError {
        filter_error(
            value.position,
            format!(
                "cannot compare {} ({expected}) with {}",
                self.path,
                value.literal.kind()
            ),
            "",
        )
    }

    /// Reported at the value: the tree does not keep the operator's position.
    pub(super) fn op_error(&self, kind: &str, allowed: &str) -> FilterError {
        let position = self.values.first().map_or(0, |v| v.position);
        let op = self.op.map_or("in", CompareOp::as_str);
        filter_error(
            position,
            format!("'{op}' does not apply to {} ({kind})", self.path),
            &format!("use {allowed}"),
        )
    }

    pub(super) fn null_error(&self) -> FilterError {
        let position = self.values.first().map_or(0, |v| v.position);
        filter_error(position, "null can only be compared with eq or ne", "")
    }
}

/// The sort key's type, for reading it back from a skip token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Int,
    Float,
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Int(i64),
    Float(f64),
    Text(String),
}

impl KeyValue {
    fn encode(&self) -> String {
        match self {
            // Display writes the shortest text that parses back to the same number.
            Self::Int(n) => n.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Text(s) => s.clone(),
        }
    }

    fn decode(kind: KeyType, text: &str) -> Option<Self> {
        match kind {
            KeyType::Int => text.parse().ok().map(Self::Int),
            KeyType::Float => text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Self::Float),
            KeyType::Text => Some(Self::Text(text.to_owned())),
        }
    }

    // `Listing::after` decoded the key with the listing's own key type, so the fallbacks below
    // never apply.
    pub(super) fn int(&self) -> i64 {
        match self {
            Self::Int(n) => *n,
            _ => 0,
        }
    }

    pub(super) fn float(&self) -> f64 {
        match self {
            Self::Float(f) => *f,
            _ => 0.0,
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            other => other.encode(),
        }
    }
}

/// What a list documents: its properties, its sort keys, and how a row's key is read.
pub trait List {
    type Row;
    type Leaf: Clone + fmt::Debug + Send + Sync + 'static;
    type Key: Copy + fmt::Debug + PartialEq + Send + Sync + 'static;
    /// Part of every fingerprint, so one list's token is refused by another.
    const NAME: &'static str;
    const PROPERTIES: &'static [Property<Self::Leaf>];
    const KEYS: &'static [(&'static str, Self::Key)];
    /// The id: the default order (ascending), and the tie-breaker of every other order.
    const ID: Self::Key;
    /// `None` for [`Self::ID`].
    fn key_type(key: Self::Key) -> Option<KeyType>;
    /// The row's sort key; `None` for [`Self::ID`].
    fn key_value(key: Self::Key, row: &Self::Row) -> Option<KeyValue>;
    fn id(row: &Self::Row) -> &str;
}

/// Where a page starts: after the row with this sort key and id.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cursor {
    pub(super) key: Option<KeyValue>,
    pub(super) id: String,
}

/// A checked `$filter` and `$orderby` of list `L`, and where the page starts.
#[derive(Debug, Clone)]
pub struct Listing<L: List> {
    pub(super) filter: Option<Node<L::Leaf>>,
    /// Whether the filter's statements may stay prepared (see [`FilterShapes`]).
    prepared: bool,
    pub(super) key: L::Key,
    pub(super) descending: bool,
    pub(super) fingerprint: String,
    pub(super) after: Option<Cursor>,
}

impl<L: List> Listing<L> {
    /// Everything, in id order.
    pub fn all() -> Self {
        Self {
            filter: None,
            prepared: true,
            key: L::ID,
            descending: false,
            fingerprint: fingerprint(L::NAME, None, ""),
            after: None,
        }
    }

    /// Checks property names, operators and value types. No filter and no order list everything by id.
    pub fn new(filter: Option<&Expr>, order: Option<&OrderBy>) -> Result<Self, FilterError> {
        let checked = filter.map(resolve::<L>).transpose()?;
        let (key, descending, order_text) = match order {
            None => (L::ID, false, String::new()),
            Some(order) => {
                let key = L::KEYS
                    .iter()
                    .find(|(path, _)| *path == order.property.path)
                    .map(|(_, key)| *key)
                    .ok_or_else(|| {
                        let position = order.property.position;
                        FilterError::OrderBy {
                            position,
                            message: format!(
                                "cannot sort by '{}' at position {position}; sort by one of: {}",
                                order.property.path,
                                L::KEYS
                                    .iter()
                                    .map(|(path, _)| *path)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        }
                    })?;
                (key, order.direction == Direction::Desc, order.to_string())
            }
        };
        Ok(Self {
            filter: checked,
            prepared: filter.is_none_or(|filter| FILTER_SHAPES.admit(filter)),
            key,
            descending,
            fingerprint: fingerprint(L::NAME, filter, &order_text),
            after: None,
        })
    }

    /// How many strings a skip token of this listing holds (for `ListQuery::page`).
    pub fn token_len(&self) -> usize {
        if self.key == L::ID { 2 } else { 3 }
    }

    /// The listing from after the row a skip token names; a token of another listing is refused.
    pub fn after(mut self, token: &[String]) -> Result<Self, FilterError> {
        let cursor = match (token, L::key_type(self.key)) {
            ([fingerprint, id], None) if *fingerprint == self.fingerprint => Cursor {
                key: None,
                id: id.clone(),
            },
            ([fingerprint, key, id], Some(kind)) if *fingerprint == self.fingerprint => Cursor {
                key: Some(KeyValue::decode(kind, key).ok_or(FilterError::SkipToken)?),
                id: id.clone(),
            },
            _ => return Err(FilterError::SkipToken),
        };
        self.after = Some(cursor);
        Ok(self)
    }

    /// The skip token of the page that starts after `row`.
    pub fn token(&self, row: &L::Row) -> Vec<String> {
        let mut token = vec![self.fingerprint.clone()];
        if let Some(key) = L::key_value(self.key, row) {
            token.push(key.encode());
        }
        token.push(L::id(row).to_owned());
        token
    }

    pub(super) fn condition<T: 'static>(
        &self,
        leaf: impl Fn(&L::Leaf) -> Condition<T>,
    ) -> Option<Condition<T>> {
        let condition = tree(self.filter.as_ref()?, &leaf);
        Some(if self.prepared {
            condition
        } else {
            Box::new(Uncached(condition))
        })
    }
}

/// How many `$filter` shapes the process lets stay prepared on pooled connections.
pub const PREPARED_FILTER_SHAPES: usize = 256;

static FILTER_SHAPES: FilterShapes = FilterShapes::new(PREPARED_FILTER_SHAPES);

/// The `$filter` shapes whose statements may stay prepared: the first `limit` the process sees.
/// Each shape is a statement of its own and callers choose them, so without a bound one client
/// could grow every pooled connection's statement cache, and PostgreSQL's memory, for as long as
/// the connection lives. Filters of later shapes are planned on every use (about 0.2 ms of
/// PostgreSQL CPU per page).
pub struct FilterShapes {
    limit: usize,
    seen: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl FilterShapes {
    pub const fn new(limit: usize) -> Self {
        Self {
            limit,
            seen: std::sync::Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    /// Whether statements for `filter` may stay prepared; admits its shape while there is room.
    pub fn admit(&self, filter: &Expr) -> bool {
        let shape = shape(filter);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(&shape) {
            return true;
        }
        if seen.len() < self.limit {
            seen.insert(shape);
            return true;
        }
        false
    }
}

/// The filter without its values. Filters of one shape compile to one statement, or to a few: a
/// value can change the SQL (`eq null`, how many severities `High` stands for).
fn shape(filter: &Expr) -> String {
    match filter {
        Expr::Compare { property, op, .. } => format!("{} {} ?", property.path, op.as_str()),
        Expr::In { property, values } => format!("{} in {}", property.path, values.len()),
        Expr::Not(e) => format!("not ({})", shape(e)),
        Expr::And(a, b) => format!("({}) and ({})", shape(a), shape(b)),
        Expr::Or(a, b) => format!("({}) or ({})", shape(a), shape(b)),
    }
}

/// A condition that keeps its query out of the prepared-statement cache (see [`FilterShapes`]).
struct Uncached<T>(Condition<T>);

impl<T> Expression for Uncached<T> {
    type SqlType = Bool;
}

impl<T> AppearsOnTable<T> for Uncached<T> {}

impl<T> SelectableExpression<T> for Uncached<T> {}

impl<T> ValidGrouping<()> for Uncached<T> {
    type IsAggregate = is_aggregate::Never;
}

impl<T> QueryFragment<MultiBackend> for Uncached<T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        self.0.walk_ast(out)
    }
}

/// A short hash of the list and the canonical text of its filter and order.
fn fingerprint(list: &str, filter: Option<&Expr>, order: &str) -> String {
    let filter = filter.map(ToString::to_string).unwrap_or_default();
    let digest = Sha256::digest(format!("{list}\n{filter}\n{order}").as_bytes());
    hex::encode(&digest[..8])
}

fn tree<T: 'static, L>(node: &Node<L>, leaf: &impl Fn(&L) -> Condition<T>) -> Condition<T> {
    match node {
        Node::Leaf(l) => leaf(l),
        Node::Const(b) => Box::new((*b).into_sql::<Bool>()),
        Node::Not(a) => Box::new(diesel::dsl::not(tree(a, leaf))),
        Node::And(a, b) => Box::new(tree(a, leaf).and(tree(b, leaf))),
        Node::Or(a, b) => Box::new(tree(a, leaf).or(tree(b, leaf))),
    }
}

fn resolve<L: List>(expr: &Expr) -> Result<Node<L::Leaf>, FilterError> {
    let (property, comparison) = match expr {
        Expr::Not(a) => return Ok(Node::Not(Box::new(resolve::<L>(a)?))),
        Expr::And(a, b) => {
            return Ok(Node::And(
                Box::new(resolve::<L>(a)?),
                Box::new(resolve::<L>(b)?),
            ));
        }
        Expr::Or(a, b) => {
            return Ok(Node::Or(
                Box::new(resolve::<L>(a)?),
                Box::new(resolve::<L>(b)?),
            ));
        }
        Expr::Compare {
            property,
            op,
            value,
        } => (
            property,
            Comparison {
                path: &property.path,
                op: Some(*op),
                values: std::slice::from_ref(value),
            },
        ),
        Expr::In { property, values } => (
            property,
            Comparison {
                path: &property.path,
                op: None,
                values,
            },
        ),
    };
    let known = L::PROPERTIES
        .iter()
        .find(|p| p.path == property.path)
        .ok_or_else(|| {
            let names: Vec<&str> = L::PROPERTIES.iter().map(|p| p.path).collect();
            filter_error(
                property.position,
                format!("unknown property '{}'", property.path),
                &format!("known: {}", names.join(", ")),
            )
        })?;
    let c = &comparison;
    match &known.kind {
        Kind::Text(make) => Ok(tests(c, |v| match &v.literal {
            Literal::String(s) => Ok(s.clone()),
            _ => Err(c.type_error(v, "a string")),
        })?
        .map(make)),
        Kind::Time(make) => Ok(tests(c, |v| time(c, v))?.map(make)),
        Kind::Flag(make) => {
            let mut kept = Vec::new();
            for candidate in [true, false] {
                if matches(c, "a boolean", &candidate, |v| match v.literal {
                    Literal::Bool(b) => Ok(b),
                    _ => Err(c.type_error(v, "a boolean")),
                })? {
                    kept.push(candidate);
                }
            }
            Ok(match kept[..] {
                [] => Node::Const(false),
                [one] => Node::Leaf(make(one)),
                _ => Node::Const(true),
            })
        }
        Kind::Choice(names, make) => {
            let kept: Vec<String> = choose(c, names, false, "")?
                .into_iter()
                .map(|i| names[i].to_owned())
                .collect();
            Ok(if kept.is_empty() {
                Node::Const(false)
            } else {
                Node::Leaf(make(kept))
            })
        }
        Kind::Custom(check) => check(c),
    }
}

/// A comparison of a column with values of type `V` (null allowed with eq, ne and in).
fn tests<V>(
    c: &Comparison<'_>,
    convert: impl Fn(&Value) -> Result<V, FilterError>,
) -> Result<Node<Test<V>>, FilterError> {
    match (c.op, c.values) {
        (Some(op), [value]) => match (op, &value.literal) {
            (CompareOp::Eq, Literal::Null) => Ok(Node::Leaf(Test::IsNull(true))),
            (CompareOp::Ne, Literal::Null) => Ok(Node::Leaf(Test::IsNull(false))),
            (_, Literal::Null) => Err(c.null_error()),
            (op, _) => Ok(Node::Leaf(Test::Compare(op, convert(value)?))),
        },
        _ => {
            let mut values = Vec::new();
            let mut null = false;
            for value in c.values {
                if value.literal == Literal::Null {
                    null = true;
                } else {
                    values.push(convert(value)?);
                }
            }
            let listed = (!values.is_empty()).then(|| Node::Leaf(Test::In(values)));
            let null = null.then(|| Node::Leaf(Test::IsNull(true)));
            Ok(Node::any(listed.into_iter().chain(null)))
        }
    }
}

fn time(c: &Comparison<'_>, value: &Value) -> Result<i64, FilterError> {
    match &value.literal {
        Literal::DateTime(t) => Ok(t.micros()),
        // Some clients quote date-times; an RFC 3339 string means the same.
        Literal::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_micros())
            .map_err(|_| {
                filter_error(
                    value.position,
                    format!(
                        "'{}' is not a date-time",
                        s.chars().take(40).collect::<String>()
                    ),
                    &format!("{} takes one such as 2026-11-01T00:00:00Z", c.path),
                )
            }),
        _ => Err(c.type_error(value, "a date-time")),
    }
}

/// Whether `candidate` (a value the column can hold) passes an eq/ne/in comparison.
fn matches<T: PartialEq>(
    c: &Comparison<'_>,
    kind: &str,
    candidate: &T,
    convert: impl Fn(&Value) -> Result<T, FilterError>,
) -> Result<bool, FilterError> {
    let mut hit = false;
    for value in c.values {
        let equal = match &value.literal {
            // The columns behind these properties are NOT NULL.
            Literal::Null => false,
            _ => convert(value)? == *candidate,
        };
        hit |= match c.op {
            None | Some(CompareOp::Eq) => equal,
            Some(CompareOp::Ne) => !equal,
            Some(_) => return Err(c.op_error(kind, "eq, ne or in")),
        };
    }
    Ok(hit)
}

/// The indexes of `names` a comparison keeps; with `ordered`, gt/ge/lt/le compare positions.
pub(super) fn choose(
    c: &Comparison<'_>,
    names: &[&'static str],
    ordered: bool,
    hint: &str,
) -> Result<Vec<usize>, FilterError> {
    let index = |value: &Value| -> Result<Option<usize>, FilterError> {
        match &value.literal {
            Literal::Null => Ok(None),
            Literal::String(s) => names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(s))
                .map(Some)
                .ok_or_else(|| {
                    filter_error(
                        value.position,
                        format!(
                            "'{}' is not a value of {}",
                            s.chars().take(40).collect::<String>(),
                            c.path
                        ),
                        &format!("use {}{hint}", names.join(", ")),
                    )
                }),
            _ => Err(c.type_error(value, "a string")),
        }
    };
    let given = c.values.iter().map(index).collect::<Result<Vec<_>, _>>()?;
    let mut kept = Vec::new();
    for candidate in 0..names.len() {
        let keep = match (c.op, given.as_slice()) {
            (None, _) => given.contains(&Some(candidate)),
            (Some(CompareOp::Eq), [v]) => *v == Some(candidate),
            (Some(CompareOp::Ne), [v]) => *v != Some(candidate),
            (Some(op), [Some(v)]) if ordered => op.holds(&candidate, v),
            (Some(_), [None]) if ordered => return Err(c.null_error()),
            _ => return Err(c.op_error("an enumeration", "eq, ne or in")),
        };
        if keep {
            kept.push(candidate);
        }
    }
    Ok(kept)
}

/// Orders `$query` by `$key` then `$id`, both in the direction asked, from after `$after`
/// (`Option<(key value, id)>`). The redundant `key >= k` lets an index on (…, key, id) find the start.
macro_rules! keyset {
    ($query:expr, $key:expr, $id:expr, $descending:expr, $after:expr) => {{
        let query = $query;
        let query = if $descending {
            query.order_by(($key.desc(), $id.desc()))
        } else {
            query.order_by(($key.asc(), $id.asc()))
        };
        match $after {
            None => query,
            Some((k, i)) if $descending => {
                let (k, k2) = $crate::store::filter::twice(k);
                query.filter($key.le(k).and($key.lt(k2).or($id.lt(i))))
            }
            Some((k, i)) => {
                let (k, k2) = $crate::store::filter::twice(k);
                query.filter($key.ge(k).and($key.gt(k2).or($id.gt(i))))
            }
        }
    }};
}

/// Orders by the id alone.
macro_rules! by_id {
    ($query:expr, $id:expr, $descending:expr, $after:expr) => {{
        let query = $query;
        match ($descending, $after) {
            (false, None) => query.order_by($id.asc()),
            (true, None) => query.order_by($id.desc()),
            (false, Some(i)) => query.order_by($id.asc()).filter($id.gt(i)),
            (true, Some(i)) => query.order_by($id.desc()).filter($id.lt(i)),
        }
    }};
}

/// A [`Test`] of a NOT NULL column of table `$table`.
macro_rules! test {
    ($table:ty, $column:expr, $test:expr) => {{
        use $crate::domain::odata::CompareOp;
        use $crate::store::filter::{Condition, Test};
        let condition: Condition<$table> = match $test.clone() {
            Test::Compare(CompareOp::Eq, v) => Box::new($column.eq(v)),
            Test::Compare(CompareOp::Ne, v) => Box::new($column.ne(v)),
            Test::Compare(CompareOp::Gt, v) => Box::new($column.gt(v)),
            Test::Compare(CompareOp::Ge, v) => Box::new($column.ge(v)),
            Test::Compare(CompareOp::Lt, v) => Box::new($column.lt(v)),
            Test::Compare(CompareOp::Le, v) => Box::new($column.le(v)),
            Test::In(vs) => Box::new($column.eq_any(vs)),
            Test::IsNull(true) => Box::new($column.is_null()),
            Test::IsNull(false) => Box::new($column.is_not_null()),
        };
        condition
    }};
}

/// A [`Test`] of a nullable column: true or false, never NULL.
macro_rules! nullable_test {
    ($table:ty, $column:expr, $test:expr) => {{
        use $crate::domain::odata::CompareOp;
        use $crate::store::filter::{Condition, Test};
        let condition: Condition<$table> = match $test.clone() {
            Test::Compare(CompareOp::Ne, v) => {
                Box::new($column.is_null().or($column.assume_not_null().ne(v)))
            }
            Test::IsNull(true) => Box::new($column.is_null()),
            Test::IsNull(false) => Box::new($column.is_not_null()),
            value_test => Box::new($column.is_not_null().and(test!(
                $table,
                $column.assume_not_null(),
                value_test
            ))),
        };
        condition
    }};
}

pub(super) use {by_id, keyset, nullable_test, test};

pub(super) mod sql {
    use diesel::sql_types::{BigInt, Double, Nullable};

    diesel::define_sql_function! {
        /// The CVSS score findings sort by: v3, else v2, else the default.
        #[sql_name = "coalesce"]
        fn score(v3: Nullable<Double>, v2: Nullable<Double>, otherwise: Double) -> Double;
    }

    diesel::define_sql_function! {
        /// A nullable BIGINT with NULL read as `otherwise`.
        #[sql_name = "coalesce"]
        fn or_else(value: Nullable<BigInt>, otherwise: BigInt) -> BigInt;
    }
}

/// What NULL sorts as in nullable time columns: before every real timestamp.
pub(super) const NULL_TIME: i64 = -1;

/// For the lists' own tests: a `$filter` resolved as the list `L` resolves it.
#[cfg(test)]
pub(super) fn check<L: List>(filter: &str) -> Result<Node<L::Leaf>, FilterError> {
    let parsed =
        crate::domain::odata::parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e:?}"));
    Listing::<L>::new(Some(&parsed), None).map(|l| l.filter.unwrap_or(Node::Const(true)))
}

/// `text` as a literal inside a LIKE pattern that escapes with a backslash.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::odata::parse_filter;

    #[test]
    fn filter_shapes_are_admitted_up_to_the_limit() {
        let shapes = FilterShapes::new(2);
        let admit = |text: &str| shapes.admit(&parse_filter(text).unwrap());
        assert!(admit("properties/additionalData/packageName eq 'a'"));
        // Another value is the same shape; another operator, list length or nesting is not.
        assert!(admit("properties/additionalData/packageName eq 'b'"));
        assert!(admit("properties/additionalData/packageName ne 'a'"));
        assert!(!admit("not (properties/additionalData/packageName eq 'a')"));
        assert!(!admit(
            "properties/additionalData/packageName in ('a', 'b')"
        ));
        assert!(admit("properties/additionalData/packageName ne 'z'"));
        assert_eq!(
            shape(&parse_filter("(name eq 'x' or properties/id in ('a', 'b')) and not (properties/category ne 'c')").unwrap()),
            "((name eq ?) or (properties/id in 2)) and (not (properties/category ne ?))"
        );
    }
}
