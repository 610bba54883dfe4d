//! Runs a parsed query: rows stream from the source through the operators, and only the
//! operators that need all their input (`summarize`, `count`, `order by`, `top`, a join's right
//! side, a union's other tables) hold rows — and a final `order by` holds only the rows of the
//! window asked for.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat};
use serde_json::Value;

use super::ast::{
    BinaryOp, Expr, ExprKind, JoinKind, NamedAggregate, NamedExpr, Operator, ParsePart, SortKey,
    Source as TableSource, Tabular, TypeName,
};
use super::eval::{Context, Record, eval};
use super::functions::{Aggregation, convert_text};
use super::parser::{error_at, unique_name};
use super::value::{Scalar, compare, group_key, sort_order};
use super::{
    Column, ColumnType, CompareOp, Constraint, ExecError, KqlError, Output, Scan, Source, Test,
    Window,
};

type Rows<'a, E> = Box<dyn Iterator<Item = Result<Record, ExecError<E>>> + 'a>;
/// Rows, each with how many identical rows it stands for.
type CountedRows<'a, E> = Box<dyn Iterator<Item = Result<(Record, u64), ExecError<E>>> + 'a>;

/// Runs `tabular` and returns `window` of its result, with the exact row count.
pub(super) fn run<S: Source>(
    tabular: &Tabular,
    text: &str,
    source: &mut S,
    window: Window,
    cx: Context,
) -> Result<Output, ExecError<S::Error>> {
    check_tables(tabular, text, source).map_err(ExecError::Query)?;
    let skip = usize::try_from(window.skip).unwrap_or(usize::MAX);
    let top = usize::try_from(window.top).unwrap_or(usize::MAX);
    let keep = skip.saturating_add(top);
    let mut columns = ColumnTracker::default();
    let ops = &tabular.operators;
    let reads = reads(tabular);

    // A final `order by` (only row-for-row operators after it) keeps just the window's rows.
    let final_sort = ops
        .iter()
        .rposition(|op| !is_row_map(op))
        .filter(|&k| matches!(ops.get(k), Some(Operator::Sort(_))));
    let (kept, total) = match (final_sort, ops.get(final_sort.unwrap_or(0))) {
        (Some(k), Some(Operator::Sort(keys))) => {
            let rows = open(tabular, k, source, cx, reads.as_deref())?;
            let observe_all = k + 1 == ops.len();
            let (sorted, total) = sort_rows(rows, keys, Some(keep), cx, |r| {
                if observe_all {
                    columns.observe(r)
                }
            })?;
            let mut rows: Rows<'_, S::Error> = Box::new(sorted.into_iter().map(Ok));
            for op in &ops[k + 1..] {
                rows = apply(rows, op, cx, Vec::new())?;
            }
            let mut kept = Vec::new();
            for row in rows.skip(skip) {
                let row = row?;
                if !observe_all {
                    columns.observe(&row);
                }
                kept.push(row);
            }
            (kept, total)
        }
        _ => {
            let rows = open(tabular, ops.len(), source, cx, reads.as_deref())?;
            let mut kept = Vec::new();
            let mut total: u64 = 0;
            for row in rows {
                let row = row?;
                columns.observe(&row);
                let index = usize::try_from(total).unwrap_or(usize::MAX);
                if index >= skip && index < keep {
                    kept.push(row);
                }
                total += 1;
            }
            (kept, total)
        }
    };

    let names = schema(tabular).unwrap_or_else(|| columns.names.clone());
    let rows = kept
        .into_iter()
        .map(|row| {
            names
                .iter()
                .map(|name| row.get(name).map_or(Value::Null, Scalar::to_json))
                .collect()
        })
        .collect();
    let columns = names
        .iter()
        .map(|name| Column {
            name: name.clone(),
            kind: columns.kind(name),
        })
        .collect();
    Ok(Output {
        columns,
        rows,
        total_records: total,
    })
}

/// Operators that turn each row into exactly one row.
fn is_row_map(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Extend(_)
            | Operator::Project(_)
            | Operator::ProjectAway(_)
            | Operator::ProjectRename(_)
            | Operator::Parse { .. }
    )
}

fn check_tables<S: Source>(tabular: &Tabular, text: &str, source: &S) -> Result<(), KqlError> {
    match &tabular.source {
        TableSource::Table { name, at } => {
            if !source.has_table(name) {
                return Err(error_at(
                    text,
                    "InvalidQuery",
                    *at,
                    &format!("unknown table '{name}'"),
                ));
            }
        }
        TableSource::Union(arms) => {
            for arm in arms {
                check_tables(arm, text, source)?;
            }
        }
        TableSource::Nested(inner) => check_tables(inner, text, source)?,
    }
    for op in &tabular.operators {
        match op {
            Operator::Join { right, .. } => check_tables(right, text, source)?,
            Operator::Union(arms) => {
                for arm in arms {
                    check_tables(arm, text, source)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The rows of `tabular` after its first `upto` operators; `reads` are the table paths that the
/// whole query reads when its rows come from `tabular`'s table ([`reads`]), `None` otherwise.
fn open<'a, S: Source>(
    tabular: &'a Tabular,
    upto: usize,
    source: &'a mut S,
    cx: Context,
    reads: Option<&[Vec<String>]>,
) -> Result<Rows<'a, S::Error>, ExecError<S::Error>> {
    let operators = &tabular.operators[..upto.min(tabular.operators.len())];
    // Side inputs are read before the main rows start to flow (the source is read by one
    // iterator at a time).
    let mut side_inputs = Vec::new();
    for op in operators {
        side_inputs.push(match op {
            Operator::Join { right, .. } => collect(right, source, cx)?,
            Operator::Union(arms) => {
                let mut rows = Vec::new();
                for arm in arms {
                    rows.extend(collect(arm, source, cx)?);
                }
                rows
            }
            _ => Vec::new(),
        });
    }
    let mut index = 0;
    let mut rows: Rows<'a, S::Error> = match &tabular.source {
        TableSource::Table { name, .. } => {
            let scan = Scan {
                constraints: pushdown(tabular, cx),
                reads: reads.map(<[Vec<String>]>::to_vec),
            };
            // `reads` is given for the query's own table only: its summarize may count.
            match counted_summarize(operators).filter(|_| reads.is_some()) {
                Some((k, aggregates, by)) => {
                    let counted = source
                        .counted_rows(name, &scan)
                        .map_err(ExecError::Source)?;
                    let mut counted: CountedRows<'a, S::Error> = Box::new(counted.map(|row| {
                        row.map(|(row, times)| (Record::from_row(row), times))
                            .map_err(ExecError::Source)
                    }));
                    for op in &operators[..k] {
                        counted = match op {
                            Operator::Where(predicate) => {
                                Box::new(counted.filter(move |row| match row {
                                    Ok((row, _)) => passes(predicate, row, cx),
                                    Err(_) => true,
                                }))
                            }
                            Operator::Extend(items) => Box::new(counted.map(move |row| {
                                let (mut row, times) = row?;
                                extend(&mut row, items, cx);
                                Ok((row, times))
                            })),
                            _ => counted,
                        };
                    }
                    index = k + 1;
                    Box::new(summarize(counted, aggregates, by, cx)?.into_iter().map(Ok))
                }
                None => {
                    let rows = source.rows(name, &scan).map_err(ExecError::Source)?;
                    Box::new(rows.map(|row| row.map(Record::from_row).map_err(ExecError::Source)))
                }
            }
        }
        TableSource::Nested(inner) => open(inner, inner.operators.len(), source, cx, None)?,
        TableSource::Union(arms) => {
            let mut later = Vec::new();
            for arm in arms.iter().skip(1) {
                later.extend(collect(arm, source, cx)?);
            }
            match arms.first() {
                Some(first) => Box::new(
                    open(first, first.operators.len(), source, cx, None)?
                        .chain(later.into_iter().map(Ok)),
                ),
                None => Box::new(later.into_iter().map(Ok)),
            }
        }
    };
    while let Some(op) = operators.get(index) {
        let side = std::mem::take(&mut side_inputs[index]);
        // `order by … | take n` keeps only n rows while sorting.
        if let (Operator::Sort(keys), Some(Operator::Take(count))) = (op, operators.get(index + 1))
        {
            let limit = constant_count(count, cx)?;
            let (sorted, _) = sort_rows(rows, keys, Some(limit), cx, |_| {})?;
            rows = Box::new(sorted.into_iter().map(Ok));
            index += 2;
            continue;
        }
        rows = apply(rows, op, cx, side)?;
        index += 1;
    }
    Ok(rows)
}

fn passes(predicate: &Expr, row: &Record, cx: Context) -> bool {
    eval(predicate, row, cx).is_true()
}

fn extend(row: &mut Record, items: &[NamedExpr], cx: Context) {
    for item in items {
        let value = eval(&item.expr, row, cx);
        row.set(&item.name, value);
    }
}

/// The index, aggregations and groups of a `summarize` that reads its table's rows through `where` and `extend` alone and
/// whose aggregations give the same answer for a row counted n times as for n copies of it
/// (`count`, `countif`, `dcount`, `make_set`, `min`, `max`, `take_any`): the source may then
/// hand identical rows over once, with their number ([`Source::counted_rows`]).
fn counted_summarize(operators: &[Operator]) -> Option<(usize, &[NamedAggregate], &[NamedExpr])> {
    let k = operators
        .iter()
        .position(|op| !matches!(op, Operator::Where(_) | Operator::Extend(_)))?;
    match operators.get(k) {
        Some(Operator::Summarize { aggregates, by })
            if aggregates.iter().all(|a| {
                matches!(
                    a.aggregation,
                    Aggregation::Count
                        | Aggregation::CountIf
                        | Aggregation::DCount
                        | Aggregation::MakeSet
                        | Aggregation::Min
                        | Aggregation::Max
                        | Aggregation::TakeAny
                )
            }) =>
        {
            Some((k, aggregates, by))
        }
        _ => None,
    }
}

fn collect<S: Source>(
    tabular: &Tabular,
    source: &mut S,
    cx: Context,
) -> Result<Vec<Record>, ExecError<S::Error>> {
    open(tabular, tabular.operators.len(), source, cx, None)?.collect()
}

fn constant_count<E>(expr: &Expr, cx: Context) -> Result<usize, ExecError<E>> {
    if expr.reads_columns() {
        return Err(ExecError::Query(KqlError {
            code: "InvalidQuery",
            message: "a row count must be a constant".into(),
            line: 1,
            position: 1,
            token: String::new(),
        }));
    }
    let n = eval(expr, &Record::default(), cx).as_i64().unwrap_or(0);
    Ok(usize::try_from(n.max(0)).unwrap_or(usize::MAX))
}

fn apply<'a, E: 'a>(
    rows: Rows<'a, E>,
    op: &'a Operator,
    cx: Context,
    side: Vec<Record>,
) -> Result<Rows<'a, E>, ExecError<E>> {
    Ok(match op {
        Operator::Where(predicate) => Box::new(rows.filter(move |row| match row {
            Ok(row) => passes(predicate, row, cx),
            Err(_) => true,
        })),
        Operator::Extend(items) => Box::new(rows.map(move |row| {
            let mut row = row?;
            extend(&mut row, items, cx);
            Ok(row)
        })),
        Operator::Project(items) => Box::new(rows.map(move |row| {
            let row = row?;
            Ok(Record {
                columns: items
                    .iter()
                    .map(|item| (item.name.clone(), eval(&item.expr, &row, cx)))
                    .collect(),
            })
        })),
        Operator::ProjectAway(patterns) => Box::new(rows.map(move |row| {
            let mut row = row?;
            row.columns
                .retain(|(name, _)| !patterns.iter().any(|p| glob_matches(p, name)));
            Ok(row)
        })),
        Operator::ProjectRename(renames) => Box::new(rows.map(move |row| {
            let mut row = row?;
            for (new, old) in renames {
                if let Some(column) = row.columns.iter_mut().find(|(n, _)| n == old) {
                    column.0 = new.clone();
                }
            }
            Ok(row)
        })),
        Operator::Summarize { aggregates, by } => {
            let groups = summarize(rows.map(|row| row.map(|r| (r, 1))), aggregates, by, cx)?;
            Box::new(groups.into_iter().map(Ok))
        }
        Operator::Sort(keys) => {
            let (sorted, _) = sort_rows(rows, keys, None, cx, |_| {})?;
            Box::new(sorted.into_iter().map(Ok))
        }
        Operator::Top { count, key } => {
            let limit = constant_count(count, cx)?;
            let (sorted, _) = sort_rows(rows, std::slice::from_ref(key), Some(limit), cx, |_| {})?;
            Box::new(sorted.into_iter().map(Ok))
        }
        Operator::Take(count) => Box::new(rows.take(constant_count(count, cx)?)),
        Operator::Distinct(columns) => {
            let mut seen = HashSet::new();
            Box::new(rows.filter_map(move |row| {
                let row = match row {
                    Ok(row) => row,
                    Err(e) => return Some(Err(e)),
                };
                let row = match columns {
                    Some(names) => Record {
                        columns: names
                            .iter()
                            .map(|n| (n.clone(), row.get(n).cloned().unwrap_or(Scalar::Null)))
                            .collect(),
                    },
                    None => row,
                };
                let mut key = String::new();
                for (name, value) in &row.columns {
                    key.push_str(name);
                    key.push('=');
                    group_key(value, &mut key);
                }
                seen.insert(key).then_some(Ok(row))
            }))
        }
        Operator::Count => {
            let mut count: i64 = 0;
            for row in rows {
                row?;
                count += 1;
            }
            Box::new(std::iter::once(Ok(Record {
                columns: vec![("Count".to_owned(), Scalar::Long(count))],
            })))
        }
        Operator::Join { kind, on, .. } => join(rows, *kind, on, side),
        Operator::Union(_) => Box::new(rows.chain(side.into_iter().map(Ok))),
        Operator::MvExpand { items, limit } => {
            let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
            Box::new(
                rows.flat_map(move |row| -> Vec<Result<Record, ExecError<E>>> {
                    match row {
                        Ok(row) => mv_expand(&row, items, limit, cx)
                            .into_iter()
                            .map(Ok)
                            .collect(),
                        Err(e) => vec![Err(e)],
                    }
                }),
            )
        }
        Operator::Parse { input, parts } => Box::new(rows.map(move |row| {
            let mut row = row?;
            let text = eval(input, &row, cx).to_text().into_owned();
            for (name, value) in parse_text(&text, parts) {
                row.set(&name, value);
            }
            Ok(row)
        })),
    })
}

/// `*` in a `project-away` name stands for any run of characters.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut pieces = pattern.split('*');
    let Some(first) = pieces.next() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Sorts rows by `keys`, keeping only the first `limit` when given (a buffer of at most twice
/// that, trimmed as it fills), and counts every row it saw.
fn sort_rows<E>(
    rows: impl Iterator<Item = Result<Record, E>>,
    keys: &[SortKey],
    limit: Option<usize>,
    cx: Context,
    mut observe: impl FnMut(&Record),
) -> Result<(Vec<Record>, u64), E> {
    let order = |a: &(Vec<Scalar>, u64, Record), b: &(Vec<Scalar>, u64, Record)| {
        for (key, (x, y)) in keys.iter().zip(a.0.iter().zip(&b.0)) {
            let ordering = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) if key.nulls_first => Ordering::Less,
                (true, false) => Ordering::Greater,
                (false, true) if key.nulls_first => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) if key.descending => sort_order(y, x),
                (false, false) => sort_order(x, y),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        a.1.cmp(&b.1)
    };
    let mut buffer: Vec<(Vec<Scalar>, u64, Record)> = Vec::new();
    let mut seen: u64 = 0;
    let trim_at = limit.map(|l| l.saturating_mul(2).max(64));
    for row in rows {
        let row = row?;
        observe(&row);
        if limit == Some(0) {
            seen += 1;
            continue;
        }
        let values = keys.iter().map(|k| eval(&k.expr, &row, cx)).collect();
        buffer.push((values, seen, row));
        seen += 1;
        if let (Some(limit), Some(trim_at)) = (limit, trim_at)
            && buffer.len() >= trim_at
        {
            buffer.sort_by(order);
            buffer.truncate(limit);
        }
    }
    buffer.sort_by(order);
    if let Some(limit) = limit {
        buffer.truncate(limit);
    }
    Ok((buffer.into_iter().map(|(_, _, row)| row).collect(), seen))
}

/// One group's running state for one aggregation.
enum State {
    Count(i64),
    Distinct(HashSet<String>),
    Set(HashSet<String>, Vec<Value>, usize),
    List(Vec<Value>, usize),
    Extreme(Scalar),
    Sum(Scalar),
    Avg(f64, i64),
    Arg(Scalar, Option<Record>),
    Any(Scalar),
}

/// Groups `rows`, each with how many identical rows it stands for (1 unless the source counted
/// them; only the aggregations of [`counted_summarize`] are given counts above 1).
fn summarize<E>(
    rows: impl Iterator<Item = Result<(Record, u64), ExecError<E>>>,
    aggregates: &[NamedAggregate],
    by: &[NamedExpr],
    cx: Context,
) -> Result<Vec<Record>, ExecError<E>> {
    let new_state = |aggregate: &NamedAggregate| -> State {
        let cap = aggregate
            .args
            .get(1)
            .and_then(|e| eval(e, &Record::default(), cx).as_i64())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1_048_576);
        match aggregate.aggregation {
            Aggregation::Count | Aggregation::CountIf => State::Count(0),
            Aggregation::DCount => State::Distinct(HashSet::new()),
            Aggregation::MakeSet => State::Set(HashSet::new(), Vec::new(), cap),
            Aggregation::MakeList => State::List(Vec::new(), cap),
            Aggregation::Min | Aggregation::Max => State::Extreme(Scalar::Null),
            Aggregation::Sum => State::Sum(Scalar::Null),
            Aggregation::Avg => State::Avg(0.0, 0),
            Aggregation::ArgMax | Aggregation::ArgMin => State::Arg(Scalar::Null, None),
            Aggregation::TakeAny => State::Any(Scalar::Null),
        }
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Vec<Scalar>, Vec<State>)> = Vec::new();
    for row in rows {
        let (row, times) = row?;
        let keys: Vec<Scalar> = by.iter().map(|b| eval(&b.expr, &row, cx)).collect();
        let mut key = String::new();
        for k in &keys {
            group_key(k, &mut key);
        }
        let slot = *index.entry(key).or_insert_with(|| {
            groups.push((keys, aggregates.iter().map(new_state).collect()));
            groups.len() - 1
        });
        let Some((_, states)) = groups.get_mut(slot) else {
            continue;
        };
        for (aggregate, state) in aggregates.iter().zip(states.iter_mut()) {
            let arg = || {
                aggregate
                    .args
                    .first()
                    .map_or(Scalar::Null, |e| eval(e, &row, cx))
            };
            match state {
                State::Count(n) => {
                    if aggregate.aggregation == Aggregation::Count || arg().is_true() {
                        *n += i64::try_from(times).unwrap_or(i64::MAX);
                    }
                }
                State::Distinct(seen) => {
                    let value = arg();
                    if !value.is_null() {
                        let mut key = String::new();
                        group_key(&value, &mut key);
                        seen.insert(key);
                    }
                }
                State::Set(seen, items, cap) => {
                    let value = arg();
                    if !value.is_null() && items.len() < *cap {
                        let mut key = String::new();
                        group_key(&value, &mut key);
                        if seen.insert(key) {
                            items.push(value.to_json());
                        }
                    }
                }
                State::List(items, cap) => {
                    let value = arg();
                    if !value.is_null() && items.len() < *cap {
                        items.push(value.to_json());
                    }
                }
                State::Extreme(best) => {
                    let value = arg();
                    let wanted = if aggregate.aggregation == Aggregation::Max {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    };
                    if !value.is_null() && (best.is_null() || compare(&value, best) == Some(wanted))
                    {
                        *best = value;
                    }
                }
                State::Sum(total) => {
                    let value = arg();
                    *total = match (total.typed().as_ref(), value.typed().as_ref()) {
                        (_, Scalar::Null) => total.clone(),
                        (Scalar::Null, v @ (Scalar::Long(_) | Scalar::Real(_))) => v.clone(),
                        (Scalar::Long(a), Scalar::Long(b)) => {
                            a.checked_add(*b).map_or(Scalar::Null, Scalar::Long)
                        }
                        (a, b) => match (a.as_f64(), b.as_f64()) {
                            (Some(a), Some(b)) => Scalar::Real(a + b),
                            _ => total.clone(),
                        },
                    };
                }
                State::Avg(sum, n) => {
                    if let Some(v) = arg().as_f64() {
                        *sum += v;
                        *n += 1;
                    }
                }
                State::Arg(best, kept) => {
                    let value = arg();
                    let wanted = if aggregate.aggregation == Aggregation::ArgMax {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    };
                    // The first row stands until a row with a greater (lesser) value comes.
                    let replace = match (kept.is_none(), value.is_null()) {
                        (true, _) => true,
                        (false, true) => false,
                        (false, false) => best.is_null() || compare(&value, best) == Some(wanted),
                    };
                    if replace {
                        *best = value;
                        *kept = Some(row.clone());
                    }
                }
                State::Any(value) => {
                    if value.is_null() {
                        *value = arg();
                    }
                }
            }
        }
    }
    // Without `by`, an empty input still gives one row (count 0).
    if groups.is_empty() && by.is_empty() {
        groups.push((Vec::new(), aggregates.iter().map(new_state).collect()));
    }
    Ok(groups
        .into_iter()
        .map(|(keys, states)| {
            let mut row = Record::default();
            for (b, key) in by.iter().zip(keys) {
                row.columns.push((b.name.clone(), key));
            }
            for (aggregate, state) in aggregates.iter().zip(states) {
                finish(aggregate, state, by, &mut row, cx);
            }
            row
        })
        .collect())
}

fn finish(
    aggregate: &NamedAggregate,
    state: State,
    by: &[NamedExpr],
    row: &mut Record,
    cx: Context,
) {
    let value = match state {
        State::Count(n) => Scalar::Long(n),
        State::Distinct(seen) => Scalar::Long(seen.len() as i64),
        State::Set(_, items, _) | State::List(items, _) => Scalar::Dynamic(Value::Array(items)),
        State::Extreme(v) | State::Sum(v) | State::Any(v) => v,
        State::Avg(sum, n) => {
            if n == 0 {
                Scalar::Null
            } else {
                Scalar::Real(sum / n as f64)
            }
        }
        State::Arg(best, kept) => {
            row.columns.push((aggregate.name.clone(), best));
            let kept = kept.unwrap_or_default();
            match &aggregate.returned {
                Some(columns) => {
                    for column in columns {
                        let value = eval(&column.expr, &kept, cx);
                        let name = unique_name(
                            column.name.clone(),
                            row.columns.iter().map(|(n, _)| n.as_str()),
                        );
                        row.columns.push((name, value));
                    }
                }
                None => {
                    let skip: Vec<String> = aggregate
                        .args
                        .first()
                        .and_then(Expr::path)
                        .into_iter()
                        .filter(|p| p.len() == 1)
                        .flatten()
                        .chain(by.iter().map(|b| b.name.clone()))
                        .collect();
                    for (name, value) in kept.columns {
                        if skip.contains(&name) {
                            continue;
                        }
                        let name = unique_name(name, row.columns.iter().map(|(n, _)| n.as_str()));
                        row.columns.push((name, value));
                    }
                }
            }
            return;
        }
    };
    row.columns.push((aggregate.name.clone(), value));
}

fn join<'a, E: 'a>(
    left: Rows<'a, E>,
    kind: JoinKind,
    on: &'a [(String, String)],
    right: Vec<Record>,
) -> Rows<'a, E> {
    let key_of = |row: &Record, columns: &mut dyn Iterator<Item = &String>| -> Option<String> {
        let mut key = String::new();
        for column in columns {
            let value = row.get(column)?;
            if value.is_null() {
                return None;
            }
            group_key(value, &mut key);
        }
        Some(key)
    };
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, row) in right.iter().enumerate() {
        if let Some(key) = key_of(row, &mut on.iter().map(|(_, r)| r)) {
            by_key.entry(key).or_default().push(i);
        }
    }
    let mut right_columns: Vec<String> = Vec::new();
    for row in &right {
        for (name, _) in &row.columns {
            if !right_columns.contains(name) {
                right_columns.push(name.clone());
            }
        }
    }
    let mut seen_left = HashSet::new();
    Box::new(
        left.flat_map(move |row| -> Vec<Result<Record, ExecError<E>>> {
            let row = match row {
                Ok(row) => row,
                Err(e) => return vec![Err(e)],
            };
            let key = key_of(&row, &mut on.iter().map(|(l, _)| l));
            if kind == JoinKind::InnerUnique
                && let Some(key) = &key
                && !seen_left.insert(key.clone())
            {
                return Vec::new();
            }
            let matches = key.as_ref().and_then(|k| by_key.get(k));
            let merge = |right_row: Option<&Record>| {
                let mut out = row.clone();
                let left_names: Vec<String> = row.columns.iter().map(|(n, _)| n.clone()).collect();
                for name in &right_columns {
                    let value = right_row
                        .and_then(|r| r.get(name))
                        .cloned()
                        .unwrap_or(Scalar::Null);
                    let taken: Vec<&str> = left_names
                        .iter()
                        .map(String::as_str)
                        .chain(
                            out.columns[left_names.len()..]
                                .iter()
                                .map(|(n, _)| n.as_str()),
                        )
                        .collect();
                    let name = unique_name(name.clone(), taken.iter().copied());
                    out.columns.push((name, value));
                }
                Ok(out)
            };
            match matches {
                Some(indices) => indices.iter().map(|&i| merge(right.get(i))).collect(),
                None if kind == JoinKind::LeftOuter => vec![merge(None)],
                None => Vec::new(),
            }
        }),
    )
}

/// One row per element of the expanded arrays (expanded side by side); a property bag expands
/// to one single-property bag per property; a scalar or null stays one row; a row whose arrays
/// are all empty is dropped (as Kusto drops it).
fn mv_expand(row: &Record, items: &[NamedExpr], limit: usize, cx: Context) -> Vec<Record> {
    let expanded: Vec<Vec<Scalar>> = items
        .iter()
        .map(|item| match eval(&item.expr, row, cx) {
            Scalar::Dynamic(Value::Array(values)) => {
                values.into_iter().map(Scalar::dynamic).collect()
            }
            Scalar::Dynamic(Value::Object(bag)) => bag
                .into_iter()
                .map(|(k, v)| {
                    let mut single = serde_json::Map::new();
                    single.insert(k, v);
                    Scalar::Dynamic(Value::Object(single))
                })
                .collect(),
            other => vec![other],
        })
        .collect();
    let count = expanded.iter().map(Vec::len).max().unwrap_or(0).min(limit);
    (0..count)
        .map(|i| {
            let mut out = row.clone();
            for (item, values) in items.iter().zip(&expanded) {
                out.set(&item.name, values.get(i).cloned().unwrap_or(Scalar::Null));
            }
            out
        })
        .collect()
}

/// `parse … with`: literals are found in order, each column takes the text up to the next
/// literal (or to the end), `*` skips. When the text does not match, every column is empty.
fn parse_text(text: &str, parts: &[ParsePart]) -> Vec<(String, Scalar)> {
    let columns = parts.iter().filter_map(|p| match p {
        ParsePart::Column { name, kind } => Some((name.clone(), *kind)),
        _ => None,
    });
    let empty = |kind: TypeName| match kind {
        TypeName::String => Scalar::Str(String::new()),
        _ => Scalar::Null,
    };
    let mut values = Vec::new();
    let mut rest = text;
    let mut pending: Option<Option<(String, TypeName)>> = None;
    let mut matched = true;
    for part in parts {
        match part {
            ParsePart::Literal(literal) => {
                let found = if pending.is_some() {
                    rest.find(literal.as_str())
                } else {
                    rest.starts_with(literal.as_str()).then_some(0)
                };
                let Some(i) = found else {
                    matched = false;
                    break;
                };
                if let Some(Some((name, kind))) = pending.take() {
                    values.push((name, typed_capture(&rest[..i], kind)));
                }
                rest = &rest[i + literal.len()..];
            }
            ParsePart::Any => {
                if let Some(Some((name, kind))) = pending.take() {
                    values.push((name, empty(kind)));
                }
                pending = Some(None);
            }
            ParsePart::Column { name, kind } => {
                if let Some(Some((name, kind))) = pending.take() {
                    values.push((name, empty(kind)));
                }
                pending = Some(Some((name.clone(), *kind)));
            }
        }
    }
    if !matched {
        return columns.map(|(name, kind)| (name, empty(kind))).collect();
    }
    if let Some(Some((name, kind))) = pending {
        values.push((name, typed_capture(rest, kind)));
    }
    values
}

fn typed_capture(text: &str, kind: TypeName) -> Scalar {
    let name = match kind {
        TypeName::String => return Scalar::Str(text.to_owned()),
        TypeName::Long => "long",
        TypeName::Real => "real",
        TypeName::Datetime => "datetime",
        TypeName::Bool => "bool",
        TypeName::Dynamic => "dynamic",
        TypeName::Timespan => "timespan",
    };
    convert_text(text, name)
}

/// The output columns when the query fixes them (`project`, `summarize`, `count`, …), whatever
/// rows come; `None` when they depend on the table's rows.
fn schema(tabular: &Tabular) -> Option<Vec<String>> {
    let mut columns: Option<Vec<String>> = match &tabular.source {
        TableSource::Nested(inner) => schema(inner),
        _ => None,
    };
    for op in &tabular.operators {
        columns = match op {
            Operator::Extend(items) | Operator::MvExpand { items, .. } => columns.map(|mut c| {
                for item in items {
                    if !c.contains(&item.name) {
                        c.push(item.name.clone());
                    }
                }
                c
            }),
            Operator::Parse { parts, .. } => columns.map(|mut c| {
                for part in parts {
                    if let ParsePart::Column { name, .. } = part
                        && !c.contains(name)
                    {
                        c.push(name.clone());
                    }
                }
                c
            }),
            Operator::Project(items) => Some(items.iter().map(|i| i.name.clone()).collect()),
            Operator::ProjectAway(patterns) => columns.map(|mut c| {
                c.retain(|name| !patterns.iter().any(|p| glob_matches(p, name)));
                c
            }),
            Operator::ProjectRename(renames) => columns.map(|c| {
                c.into_iter()
                    .map(|name| {
                        renames
                            .iter()
                            .find(|(_, old)| *old == name)
                            .map_or(name, |(new, _)| new.clone())
                    })
                    .collect()
            }),
            Operator::Summarize { aggregates, by } => {
                if aggregates.iter().any(|a| a.returned.is_none()) {
                    None
                } else {
                    let mut c: Vec<String> = by.iter().map(|b| b.name.clone()).collect();
                    for aggregate in aggregates {
                        c.push(aggregate.name.clone());
                        for returned in aggregate.returned.iter().flatten() {
                            let name =
                                unique_name(returned.name.clone(), c.iter().map(String::as_str));
                            c.push(name);
                        }
                    }
                    Some(c)
                }
            }
            Operator::Distinct(Some(names)) => Some(names.clone()),
            Operator::Count => Some(vec!["Count".to_owned()]),
            Operator::Join { .. } | Operator::Union(_) => None,
            Operator::Where(_)
            | Operator::Sort(_)
            | Operator::Top { .. }
            | Operator::Take(_)
            | Operator::Distinct(None) => columns,
        };
    }
    columns
}

/// Column names in order of first appearance and the type of the values seen in each.
#[derive(Default)]
struct ColumnTracker {
    names: Vec<String>,
    kinds: HashMap<String, Option<ColumnType>>,
}

impl ColumnTracker {
    fn observe(&mut self, row: &Record) {
        for (name, value) in &row.columns {
            let seen = match self.kinds.get_mut(name) {
                Some(seen) => seen,
                None => {
                    self.names.push(name.clone());
                    self.kinds.entry(name.clone()).or_insert(None)
                }
            };
            let kind = match value {
                Scalar::Null => continue,
                Scalar::Bool(_) => ColumnType::Boolean,
                Scalar::Long(_) => ColumnType::Integer,
                Scalar::Real(_) => ColumnType::Number,
                Scalar::Str(_) | Scalar::Timespan(_) => ColumnType::String,
                Scalar::Datetime(_) => ColumnType::Datetime,
                Scalar::Dynamic(_) => ColumnType::Object,
            };
            *seen = Some(match *seen {
                None => kind,
                Some(previous) if previous == kind => kind,
                Some(ColumnType::Integer | ColumnType::Number)
                    if matches!(kind, ColumnType::Integer | ColumnType::Number) =>
                {
                    ColumnType::Number
                }
                Some(_) => ColumnType::Object,
            });
        }
    }

    fn kind(&self, name: &str) -> ColumnType {
        self.kinds
            .get(name)
            .copied()
            .flatten()
            .unwrap_or(ColumnType::String)
    }
}

/// The table paths a query reads, when its rows come straight from a table and every operator up
/// to the first that replaces all columns (`project`, `summarize`, `count`, `distinct`) names
/// what it reads; `None` when the result may hold the table's columns unnamed, or an operator
/// reads whole rows (`arg_max(x, *)`, `distinct *`) or moves columns in ways not followed here
/// (`project-away`, `project-rename`, `join`, `union`, `mv-expand`, `parse`).
pub(super) fn reads(tabular: &Tabular) -> Option<Vec<Vec<String>>> {
    if !matches!(tabular.source, TableSource::Table { .. }) {
        return None;
    }
    let mut reads = Vec::new();
    // Names defined by `extend`: later uses read them, not the table.
    let mut defined: HashSet<&str> = HashSet::new();
    for op in &tabular.operators {
        match op {
            Operator::Where(expr) | Operator::Take(expr) => read_paths(expr, &defined, &mut reads),
            Operator::Sort(keys) => {
                for key in keys {
                    read_paths(&key.expr, &defined, &mut reads);
                }
            }
            Operator::Top { count, key } => {
                read_paths(count, &defined, &mut reads);
                read_paths(&key.expr, &defined, &mut reads);
            }
            Operator::Extend(items) => {
                for item in items {
                    read_paths(&item.expr, &defined, &mut reads);
                    defined.insert(&item.name);
                }
            }
            Operator::Project(items) => {
                for item in items {
                    read_paths(&item.expr, &defined, &mut reads);
                }
                return Some(reads);
            }
            Operator::Summarize { aggregates, by } => {
                for aggregate in aggregates {
                    let whole_rows = matches!(
                        aggregate.aggregation,
                        Aggregation::ArgMax | Aggregation::ArgMin
                    ) && aggregate.returned.is_none();
                    if whole_rows {
                        return None;
                    }
                    for arg in &aggregate.args {
                        read_paths(arg, &defined, &mut reads);
                    }
                    for item in aggregate.returned.iter().flatten() {
                        read_paths(&item.expr, &defined, &mut reads);
                    }
                }
                for item in by {
                    read_paths(&item.expr, &defined, &mut reads);
                }
                return Some(reads);
            }
            Operator::Distinct(Some(names)) => {
                for name in names {
                    if !defined.contains(name.as_str()) {
                        reads.push(vec![name.clone()]);
                    }
                }
                return Some(reads);
            }
            Operator::Count => return Some(reads),
            _ => return None,
        }
    }
    None
}

/// Adds the table paths `expr` reads: each column or member path it names whole (a path whose
/// member is computed, `properties[x]` or `list[0]`, reads its base whole).
fn read_paths(expr: &Expr, defined: &HashSet<&str>, out: &mut Vec<Vec<String>>) {
    if let Some(path) = expr.path() {
        if path
            .first()
            .is_some_and(|head| !defined.contains(head.as_str()))
            && !out.contains(&path)
        {
            out.push(path);
        }
        return;
    }
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Column(_) => {}
        ExprKind::Member(base, _) | ExprKind::Negate(base) => read_paths(base, defined, out),
        ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => {
            read_paths(a, defined, out);
            read_paths(b, defined, out);
        }
        ExprKind::In { value, list, .. } => {
            read_paths(value, defined, out);
            for item in list {
                read_paths(item, defined, out);
            }
        }
        ExprKind::Between {
            value, low, high, ..
        } => {
            read_paths(value, defined, out);
            read_paths(low, defined, out);
            read_paths(high, defined, out);
        }
        ExprKind::Call { args, .. } => {
            for arg in args {
                read_paths(arg, defined, out);
            }
        }
    }
}

/// The conditions of the leading `where` clauses that a source can test on its own rows:
/// conjuncts comparing a column or member path with a constant. An `extend` in between does not
/// stop the search, but a name it defines is no longer the table's column (and a name it binds
/// to a plain path stands for that path).
pub(super) fn pushdown(tabular: &Tabular, cx: Context) -> Vec<Constraint> {
    let mut aliases: HashMap<&str, Vec<String>> = HashMap::new();
    let mut defined: HashSet<&str> = HashSet::new();
    let mut constraints = Vec::new();
    for op in &tabular.operators {
        match op {
            Operator::Where(predicate) => {
                let mut conjuncts = Vec::new();
                split_conjuncts(predicate, &mut conjuncts);
                for conjunct in conjuncts {
                    if let Some(c) = constraint(conjunct, &aliases, &defined, cx) {
                        constraints.push(c);
                    }
                }
            }
            Operator::Extend(items) => {
                for item in items {
                    let target = item
                        .expr
                        .path()
                        .and_then(|p| resolve(&p, &aliases, &defined));
                    match target {
                        Some(path) => {
                            defined.remove(item.name.as_str());
                            aliases.insert(&item.name, path);
                        }
                        None => {
                            aliases.remove(item.name.as_str());
                            defined.insert(&item.name);
                        }
                    }
                }
            }
            _ => break,
        }
    }
    constraints
}

fn split_conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &expr.kind {
        ExprKind::Binary(BinaryOp::And, left, right) => {
            split_conjuncts(left, out);
            split_conjuncts(right, out);
        }
        _ => out.push(expr),
    }
}

/// The table path a query path stands for, if it is one.
fn resolve(
    path: &[String],
    aliases: &HashMap<&str, Vec<String>>,
    defined: &HashSet<&str>,
) -> Option<Vec<String>> {
    let (head, rest) = path.split_first()?;
    if let Some(target) = aliases.get(head.as_str()) {
        return Some(target.iter().chain(rest).cloned().collect());
    }
    if defined.contains(head.as_str()) {
        return None;
    }
    Some(path.to_vec())
}

fn constraint(
    conjunct: &Expr,
    aliases: &HashMap<&str, Vec<String>>,
    defined: &HashSet<&str>,
    cx: Context,
) -> Option<Constraint> {
    let column = |e: &Expr| e.path().and_then(|p| resolve(&p, aliases, defined));
    let constant = |e: &Expr| (!e.reads_columns()).then(|| eval(e, &Record::default(), cx));
    match &conjunct.kind {
        ExprKind::Binary(op @ (BinaryOp::Eq | BinaryOp::EqCi), left, right) => {
            let (path, value) = match (column(left), column(right)) {
                (Some(path), None) => (path, constant(right)?),
                (None, Some(path)) => (path, constant(left)?),
                _ => return None,
            };
            let ignore_case = *op == BinaryOp::EqCi;
            let value = one_of_value(&value, ignore_case)?;
            Some(Constraint {
                column: path,
                test: Test::OneOf {
                    values: vec![value],
                    ignore_case,
                },
            })
        }
        ExprKind::In {
            value,
            list,
            negated: false,
            ignore_case,
        } => {
            let path = column(value)?;
            let mut values = Vec::new();
            for item in list {
                match constant(item)? {
                    Scalar::Dynamic(Value::Array(items)) => {
                        for item in items {
                            values.push(one_of_value(&Scalar::from_json(item), *ignore_case)?);
                        }
                    }
                    other => values.push(one_of_value(&other, *ignore_case)?),
                }
            }
            Some(Constraint {
                column: path,
                test: Test::OneOf {
                    values,
                    ignore_case: *ignore_case,
                },
            })
        }
        ExprKind::Binary(
            op @ (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge),
            left,
            right,
        ) => {
            let op = match op {
                BinaryOp::Lt => CompareOp::Lt,
                BinaryOp::Le => CompareOp::Le,
                BinaryOp::Gt => CompareOp::Gt,
                _ => CompareOp::Ge,
            };
            let (path, value, op) = match (column(left), column(right)) {
                (Some(path), None) => (path, constant(right)?, op),
                (None, Some(path)) => (path, constant(left)?, flip(op)),
                _ => return None,
            };
            let value = match value {
                Scalar::Long(n) => Value::from(n),
                Scalar::Real(r) => Value::from(r),
                Scalar::Datetime(t) => Value::String(
                    DateTime::from_timestamp_micros(t)?
                        .to_rfc3339_opts(SecondsFormat::Micros, true),
                ),
                _ => return None,
            };
            Some(Constraint {
                column: path,
                test: Test::Compare { op, value },
            })
        }
        _ => None,
    }
}

fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
    }
}

/// A constant a source can test for equality: a string (any, for `=~`), number or boolean.
fn one_of_value(value: &Scalar, ignore_case: bool) -> Option<Value> {
    match value {
        Scalar::Str(s) => Some(Value::String(s.clone())),
        Scalar::Long(_) | Scalar::Real(_) | Scalar::Bool(_) if !ignore_case => {
            Some(value.to_json())
        }
        _ => None,
    }
}
