//! Scalar expressions evaluated against one row.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::Row;
use super::ast::{BinaryOp, Expr, ExprKind, TextOp};
use super::functions::Function;
use super::value::{Scalar, compare, equals};

/// A row in flight: columns in output order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Record {
    pub columns: Vec<(String, Scalar)>,
}

impl Record {
    pub(super) fn from_row(row: Row) -> Self {
        Self {
            columns: row
                .into_iter()
                .map(|(name, value)| (name, Scalar::from_json(value)))
                .collect(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&Scalar> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets a column, in place if it exists, else at the end (as `extend` does).
    pub(super) fn set(&mut self, name: &str, value: Scalar) {
        match self.columns.iter_mut().find(|(n, _)| n == name) {
            Some((_, slot)) => *slot = value,
            None => self.columns.push((name.to_owned(), value)),
        }
    }
}

/// What an expression may read besides the row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context {
    /// `now()`, in microseconds since the epoch: one instant for the whole query.
    pub now: i64,
}

/// A value inside the row, found without copying what contains it.
enum Found<'r> {
    Column(&'r Scalar),
    Member(&'r Value),
}

/// Follows a column and its literal member names and indexes (`properties.status['code']`,
/// `tags[0]`) by reference. `None` when the expression is not such a path; `Some(None)` when
/// the path leads nowhere (null).
fn lookup<'r>(expr: &Expr, row: &'r Record) -> Option<Option<Found<'r>>> {
    let container = |base: &Expr| -> Option<Option<&'r Value>> {
        Some(match lookup(base, row)? {
            Some(Found::Column(Scalar::Dynamic(value))) | Some(Found::Member(value)) => Some(value),
            _ => None,
        })
    };
    match &expr.kind {
        ExprKind::Column(name) => Some(row.get(name).map(Found::Column)),
        ExprKind::Member(base, name) => Some(
            container(base)?
                .and_then(|v| v.get(name))
                .map(Found::Member),
        ),
        ExprKind::Index(base, index) => {
            let ExprKind::Literal(key) = &index.kind else {
                return None;
            };
            let value = container(base)?;
            Some(match (value, key) {
                (Some(Value::Object(bag)), Scalar::Str(name)) => bag.get(name).map(Found::Member),
                (Some(Value::Array(items)), Scalar::Long(i)) => {
                    let i = if *i < 0 { i + items.len() as i64 } else { *i };
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| items.get(i))
                        .map(Found::Member)
                }
                _ => None,
            })
        }
        _ => None,
    }
}

pub(super) fn eval(expr: &Expr, row: &Record, cx: Context) -> Scalar {
    if matches!(expr.kind, ExprKind::Member(..) | ExprKind::Index(..))
        && let Some(found) = lookup(expr, row)
    {
        return match found {
            Some(Found::Column(value)) => value.clone(),
            Some(Found::Member(value)) => Scalar::dynamic(value.clone()),
            None => Scalar::Null,
        };
    }
    match &expr.kind {
        ExprKind::Literal(value) => value.clone(),
        ExprKind::Column(name) => row.get(name).cloned().unwrap_or(Scalar::Null),
        ExprKind::Member(base, name) => match eval(base, row, cx) {
            Scalar::Dynamic(Value::Object(mut bag)) => {
                bag.remove(name).map_or(Scalar::Null, Scalar::dynamic)
            }
            _ => Scalar::Null,
        },
        ExprKind::Index(base, index) => {
            let base = eval(base, row, cx);
            let index = eval(index, row, cx);
            match (base, index.typed().into_owned()) {
                (Scalar::Dynamic(Value::Array(mut items)), Scalar::Long(i)) => {
                    let len = items.len() as i64;
                    let i = if i < 0 { i + len } else { i };
                    if (0..len).contains(&i) {
                        Scalar::dynamic(items.swap_remove(i as usize))
                    } else {
                        Scalar::Null
                    }
                }
                (Scalar::Dynamic(Value::Object(mut bag)), Scalar::Str(key)) => {
                    bag.remove(&key).map_or(Scalar::Null, Scalar::dynamic)
                }
                _ => Scalar::Null,
            }
        }
        ExprKind::Negate(operand) => match eval(operand, row, cx).typed().as_ref() {
            Scalar::Long(n) => n.checked_neg().map_or(Scalar::Null, Scalar::Long),
            Scalar::Real(r) => Scalar::Real(-r),
            Scalar::Timespan(t) => t.checked_neg().map_or(Scalar::Null, Scalar::Timespan),
            _ => Scalar::Null,
        },
        ExprKind::Binary(op, left, right) => binary(*op, left, right, row, cx),
        ExprKind::In {
            value,
            list,
            negated,
            ignore_case,
        } => {
            let value = eval(value, row, cx);
            let mut found = false;
            for item in list {
                let item = eval(item, row, cx);
                let candidates = match item {
                    Scalar::Dynamic(Value::Array(items)) => {
                        items.into_iter().map(Scalar::dynamic).collect()
                    }
                    other => vec![other],
                };
                found = candidates.iter().any(|c| {
                    if *ignore_case {
                        value.to_text().to_lowercase() == c.to_text().to_lowercase()
                    } else {
                        equals(&value, c) == Some(true)
                    }
                });
                if found {
                    break;
                }
            }
            Scalar::Bool(found != *negated)
        }
        ExprKind::Between {
            value,
            low,
            high,
            negated,
        } => {
            let value = eval(value, row, cx);
            let low = compare(&value, &eval(low, row, cx));
            let high = compare(&value, &eval(high, row, cx));
            match (low, high) {
                (Some(l), Some(h)) => {
                    Scalar::Bool((l != Ordering::Less && h != Ordering::Greater) != *negated)
                }
                _ => Scalar::Null,
            }
        }
        ExprKind::Call {
            function,
            args,
            pattern,
        } => match function {
            Function::Iff => {
                let chosen = if args.first().is_some_and(|c| eval(c, row, cx).is_true()) {
                    args.get(1)
                } else {
                    args.get(2)
                };
                chosen.map_or(Scalar::Null, |e| eval(e, row, cx))
            }
            Function::Case => {
                let mut pairs = args.chunks_exact(2);
                for pair in pairs.by_ref() {
                    if let [condition, value] = pair
                        && eval(condition, row, cx).is_true()
                    {
                        return eval(value, row, cx);
                    }
                }
                pairs
                    .remainder()
                    .first()
                    .map_or(Scalar::Null, |e| eval(e, row, cx))
            }
            Function::Coalesce => args
                .iter()
                .map(|a| eval(a, row, cx))
                .find(|v| !v.is_null() && !matches!(v, Scalar::Str(s) if s.is_empty()))
                .unwrap_or(Scalar::Null),
            _ => {
                let values: Vec<Scalar> = args.iter().map(|a| eval(a, row, cx)).collect();
                function.apply(&values, pattern.as_ref().map(|p| &p.0), cx.now)
            }
        },
    }
}

fn binary(op: BinaryOp, left: &Expr, right: &Expr, row: &Record, cx: Context) -> Scalar {
    // `and`/`or` do not evaluate their right side when the left decides.
    match op {
        BinaryOp::And => {
            let l = eval(left, row, cx);
            if matches!(l.typed().as_ref(), Scalar::Bool(false)) {
                return Scalar::Bool(false);
            }
            let r = eval(right, row, cx);
            return match (l.typed().as_ref(), r.typed().as_ref()) {
                (_, Scalar::Bool(false)) => Scalar::Bool(false),
                (Scalar::Bool(true), Scalar::Bool(true)) => Scalar::Bool(true),
                _ => Scalar::Null,
            };
        }
        BinaryOp::Or => {
            let l = eval(left, row, cx);
            if l.is_true() {
                return Scalar::Bool(true);
            }
            let r = eval(right, row, cx);
            return match (l.typed().as_ref(), r.typed().as_ref()) {
                (_, Scalar::Bool(true)) => Scalar::Bool(true),
                (Scalar::Bool(false), Scalar::Bool(false)) => Scalar::Bool(false),
                _ => Scalar::Null,
            };
        }
        _ => {}
    }
    let l = eval(left, row, cx);
    let r = eval(right, row, cx);
    let ordered = |test: fn(Ordering) -> bool| {
        compare(&l, &r).map_or(Scalar::Null, |o| Scalar::Bool(test(o)))
    };
    match op {
        BinaryOp::Eq => equals(&l, &r).map_or(Scalar::Null, Scalar::Bool),
        BinaryOp::Ne => equals(&l, &r).map_or(Scalar::Null, |e| Scalar::Bool(!e)),
        BinaryOp::EqCi => Scalar::Bool(l.to_text().to_lowercase() == r.to_text().to_lowercase()),
        BinaryOp::NeCi => Scalar::Bool(l.to_text().to_lowercase() != r.to_text().to_lowercase()),
        BinaryOp::Lt => ordered(|o| o == Ordering::Less),
        BinaryOp::Le => ordered(|o| o != Ordering::Greater),
        BinaryOp::Gt => ordered(|o| o == Ordering::Greater),
        BinaryOp::Ge => ordered(|o| o != Ordering::Less),
        BinaryOp::Text(text_op, negated) => {
            Scalar::Bool(text_test(text_op, &l.to_text(), &r.to_text()) != negated)
        }
        BinaryOp::MatchesRegex => match cached_regex(&r.to_text()) {
            Some(regex) => Scalar::Bool(regex.is_match(&l.to_text())),
            None => Scalar::Null,
        },
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            arithmetic(op, &l, &r)
        }
        BinaryOp::And | BinaryOp::Or => Scalar::Null,
    }
}

fn text_test(op: TextOp, haystack: &str, needle: &str) -> bool {
    let folded = |s: &str, case_sensitive: bool| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    match op {
        TextOp::Contains { case_sensitive } => {
            folded(haystack, case_sensitive).contains(&folded(needle, case_sensitive))
        }
        TextOp::StartsWith { case_sensitive } => {
            folded(haystack, case_sensitive).starts_with(&folded(needle, case_sensitive))
        }
        TextOp::EndsWith { case_sensitive } => {
            folded(haystack, case_sensitive).ends_with(&folded(needle, case_sensitive))
        }
        TextOp::Has { case_sensitive } => has_term(
            &folded(haystack, case_sensitive),
            &folded(needle, case_sensitive),
            true,
            true,
        ),
        TextOp::HasPrefix => has_term(
            &haystack.to_lowercase(),
            &needle.to_lowercase(),
            true,
            false,
        ),
        TextOp::HasSuffix => has_term(
            &haystack.to_lowercase(),
            &needle.to_lowercase(),
            false,
            true,
        ),
    }
}

/// Kusto's term match: `needle` occurs where a term (a run of letters and digits) starts (when
/// `at_start`) and ends (when `at_end`).
fn has_term(haystack: &str, needle: &str, at_start: bool, at_end: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    let is_term_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    haystack.match_indices(needle).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + needle.len()..].chars().next();
        let starts_term = !is_term_char(needle.chars().next()) || !is_term_char(before);
        let ends_term = !is_term_char(needle.chars().next_back()) || !is_term_char(after);
        (!at_start || starts_term) && (!at_end || ends_term)
    })
}

fn arithmetic(op: BinaryOp, l: &Scalar, r: &Scalar) -> Scalar {
    let (l, r) = (l.typed(), r.typed());
    match (l.as_ref(), r.as_ref()) {
        (Scalar::Long(a), Scalar::Long(b)) => {
            let (a, b) = (*a, *b);
            let result = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div => a.checked_div(b),
                _ => a.checked_rem(b),
            };
            result.map_or(Scalar::Null, Scalar::Long)
        }
        (Scalar::Long(_) | Scalar::Real(_), Scalar::Long(_) | Scalar::Real(_)) => {
            let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
                return Scalar::Null;
            };
            Scalar::Real(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                _ => a % b,
            })
        }
        (Scalar::Datetime(t), Scalar::Timespan(d)) => match op {
            BinaryOp::Add => t.checked_add(*d).map_or(Scalar::Null, Scalar::Datetime),
            BinaryOp::Sub => t.checked_sub(*d).map_or(Scalar::Null, Scalar::Datetime),
            _ => Scalar::Null,
        },
        (Scalar::Timespan(d), Scalar::Datetime(t)) if op == BinaryOp::Add => {
            t.checked_add(*d).map_or(Scalar::Null, Scalar::Datetime)
        }
        (Scalar::Datetime(a), Scalar::Datetime(b)) if op == BinaryOp::Sub => {
            a.checked_sub(*b).map_or(Scalar::Null, Scalar::Timespan)
        }
        (Scalar::Timespan(a), Scalar::Timespan(b)) => match op {
            BinaryOp::Add => a.checked_add(*b).map_or(Scalar::Null, Scalar::Timespan),
            BinaryOp::Sub => a.checked_sub(*b).map_or(Scalar::Null, Scalar::Timespan),
            BinaryOp::Div if *b != 0 => Scalar::Real(*a as f64 / *b as f64),
            _ => Scalar::Null,
        },
        (Scalar::Timespan(d), n @ (Scalar::Long(_) | Scalar::Real(_))) => {
            let Some(factor) = n.as_f64() else {
                return Scalar::Null;
            };
            let value = match op {
                BinaryOp::Mul => *d as f64 * factor,
                BinaryOp::Div if factor != 0.0 => *d as f64 / factor,
                _ => return Scalar::Null,
            };
            if value.is_finite() && value.abs() < 9.2e18 {
                Scalar::Timespan(value.round() as i64)
            } else {
                Scalar::Null
            }
        }
        _ => Scalar::Null,
    }
}

/// Regular expressions written as operands of `matches regex`, compiled once per thread.
fn cached_regex(pattern: &str) -> Option<Regex> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(found) = cache.get(pattern) {
            return found.clone();
        }
        if cache.len() >= 64 {
            cache.clear();
        }
        let compiled = Regex::new(pattern).ok();
        cache.insert(pattern.to_owned(), compiled.clone());
        compiled
    })
}
