//! Kusto scalar values and the conversions between them and the JSON of the rows.
//!
//! A row's JSON is typed on the way in: strings, numbers and booleans become `string`, `long` or
//! `real` and `bool`; objects and arrays stay `dynamic`. Members of a dynamic value stay dynamic
//! (as in Kusto), and are coerced where an operator needs a type: a dynamic string compared with a
//! datetime is read as an RFC 3339 time, compared with a string it is a string.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Number, Value};

/// Microseconds in one unit of a timespan literal.
pub(super) const MICROS_PER_SECOND: i64 = 1_000_000;
pub(super) const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Long(i64),
    Real(f64),
    Str(String),
    /// Microseconds since the Unix epoch.
    Datetime(i64),
    /// Microseconds.
    Timespan(i64),
    Dynamic(Value),
}

impl Scalar {
    pub(super) fn from_json(value: Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => number_scalar(&n),
            Value::String(s) => Self::Str(s),
            other => Self::Dynamic(other),
        }
    }

    /// A member or element of a dynamic value: dynamic itself, except that a JSON null is null.
    pub(super) fn dynamic(value: Value) -> Self {
        if value.is_null() {
            Self::Null
        } else {
            Self::Dynamic(value)
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Self::Null | Self::Dynamic(Value::Null))
    }

    /// The value with a dynamic scalar replaced by its typed form (a dynamic string by a string).
    pub(super) fn typed(&self) -> Cow<'_, Scalar> {
        match self {
            Self::Dynamic(Value::String(s)) => Cow::Owned(Self::Str(s.clone())),
            Self::Dynamic(Value::Number(n)) => Cow::Owned(number_scalar(n)),
            Self::Dynamic(Value::Bool(b)) => Cow::Owned(Self::Bool(*b)),
            Self::Dynamic(Value::Null) => Cow::Owned(Self::Null),
            other => Cow::Borrowed(other),
        }
    }

    /// The value as JSON in a result row: datetimes as RFC 3339, timespans as `[d.]hh:mm:ss`.
    pub(super) fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Long(n) => Value::from(*n),
            Self::Real(r) => Number::from_f64(*r).map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::String(s.clone()),
            Self::Datetime(t) => Value::String(format_datetime(*t)),
            Self::Timespan(t) => Value::String(format_timespan(*t)),
            Self::Dynamic(v) => v.clone(),
        }
    }

    /// `tostring()`: null is the empty string, dynamic values are JSON text.
    pub(super) fn to_text(&self) -> Cow<'_, str> {
        match self {
            Self::Null => Cow::Borrowed(""),
            Self::Str(s) => Cow::Borrowed(s),
            Self::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Self::Long(n) => Cow::Owned(n.to_string()),
            Self::Real(r) => Cow::Owned(format_real(*r)),
            Self::Datetime(t) => Cow::Owned(format_datetime(*t)),
            Self::Timespan(t) => Cow::Owned(format_timespan(*t)),
            Self::Dynamic(Value::String(s)) => Cow::Borrowed(s),
            Self::Dynamic(Value::Null) => Cow::Borrowed(""),
            Self::Dynamic(v) => Cow::Owned(v.to_string()),
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self.typed().as_ref() {
            Self::Long(n) => Some(*n as f64),
            Self::Real(r) => Some(*r),
            _ => None,
        }
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match self.typed().as_ref() {
            Self::Long(n) => Some(*n),
            Self::Real(r) if r.is_finite() => Some(r.trunc() as i64),
            _ => None,
        }
    }

    /// A datetime, reading strings (also dynamic ones) as times.
    pub(super) fn as_datetime(&self) -> Option<i64> {
        match self.typed().as_ref() {
            Self::Datetime(t) => Some(*t),
            Self::Str(s) => parse_datetime(s),
            _ => None,
        }
    }

    /// The truth of a predicate: only `true` is true (null, and anything else, is not).
    pub(super) fn is_true(&self) -> bool {
        matches!(self.typed().as_ref(), Self::Bool(true))
    }
}

fn number_scalar(n: &Number) -> Scalar {
    match n.as_i64() {
        Some(i) => Scalar::Long(i),
        None => n.as_f64().map_or(Scalar::Null, Scalar::Real),
    }
}

fn format_real(r: f64) -> String {
    if r.is_nan() {
        "NaN".into()
    } else if r.is_infinite() {
        if r > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        r.to_string()
    }
}

/// Kusto's ordering of two values, after coercion: numbers with numbers, strings with strings
/// (ordinal), datetimes with datetimes or time strings, timespans, booleans. Anything else is
/// incomparable (`None`), which makes a comparison null rather than an error.
pub(super) fn compare(left: &Scalar, right: &Scalar) -> Option<Ordering> {
    let (left, right) = (left.typed(), right.typed());
    match (left.as_ref(), right.as_ref()) {
        (Scalar::Long(a), Scalar::Long(b)) => Some(a.cmp(b)),
        (Scalar::Long(_) | Scalar::Real(_), Scalar::Long(_) | Scalar::Real(_)) => {
            left.as_f64()?.partial_cmp(&right.as_f64()?)
        }
        (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
        (Scalar::Datetime(a), other) | (other, Scalar::Datetime(a)) => {
            let b = other.as_datetime()?;
            let ordering = a.cmp(&b);
            // Keep the operands' order: the datetime may have been on the right.
            Some(if matches!(left.as_ref(), Scalar::Datetime(_)) {
                ordering
            } else {
                ordering.reverse()
            })
        }
        (Scalar::Timespan(a), Scalar::Timespan(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// `==`: equal under [`compare`]; a string against null or a dynamic object compares as text
/// (`tostring`), so a missing member is not equal to any non-empty string.
pub(super) fn equals(left: &Scalar, right: &Scalar) -> Option<bool> {
    let (l, r) = (left.typed(), right.typed());
    match (l.as_ref(), r.as_ref()) {
        (Scalar::Null, Scalar::Null) => None,
        (Scalar::Str(a), other) | (other, Scalar::Str(a))
            if matches!(other, Scalar::Null | Scalar::Dynamic(_)) =>
        {
            Some(*a == other.to_text())
        }
        (Scalar::Null, _) | (_, Scalar::Null) => None,
        (Scalar::Dynamic(a), Scalar::Dynamic(b)) => Some(a == b),
        _ => compare(left, right).map(|o| o == Ordering::Equal),
    }
}

/// A total order for sorting and for min/max: nulls first, then values by [`compare`], then
/// mismatched types by type.
pub(super) fn sort_order(left: &Scalar, right: &Scalar) -> Ordering {
    match (left.is_null(), right.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => compare(left, right)
            .unwrap_or_else(|| type_rank(left).cmp(&type_rank(right)))
            .then_with(|| {
                if type_rank(left) == type_rank(right) {
                    left.to_text().cmp(&right.to_text())
                } else {
                    Ordering::Equal
                }
            }),
    }
}

fn type_rank(value: &Scalar) -> u8 {
    match value.typed().as_ref() {
        Scalar::Null => 0,
        Scalar::Bool(_) => 1,
        Scalar::Long(_) | Scalar::Real(_) => 2,
        Scalar::Datetime(_) => 3,
        Scalar::Timespan(_) => 4,
        Scalar::Str(_) => 5,
        Scalar::Dynamic(_) => 6,
    }
}

/// A string that identifies a value for grouping and `distinct`: equal keys, equal values.
pub(super) fn group_key(value: &Scalar, out: &mut String) {
    use std::fmt::Write;
    let _ = match value.typed().as_ref() {
        Scalar::Null => write!(out, "n;"),
        Scalar::Bool(b) => write!(out, "b{b};"),
        Scalar::Long(n) => write!(out, "l{n};"),
        Scalar::Real(r) => write!(out, "r{r:?};"),
        Scalar::Str(s) => write!(out, "s{}:{s};", s.len()),
        Scalar::Datetime(t) => write!(out, "t{t};"),
        Scalar::Timespan(t) => write!(out, "p{t};"),
        Scalar::Dynamic(v) => {
            let text = v.to_string();
            write!(out, "d{}:{text};", text.len())
        }
    };
}

/// Reads the time formats Kusto accepts in `datetime()` and `todatetime()`: RFC 3339 (with or
/// without an offset), `yyyy-MM-dd HH:mm[:ss[.f]]` and `yyyy-MM-dd`, all as UTC when unmarked.
pub(super) fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y/%m/%d"))
        .ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// RFC 3339 in UTC as Kusto writes it: whole seconds plain, fractions with seven digits.
pub(super) fn format_datetime(micros: i64) -> String {
    let Some(t) = DateTime::from_timestamp_micros(micros) else {
        return String::new();
    };
    if micros.rem_euclid(MICROS_PER_SECOND) == 0 {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        // Seven fractional digits (ticks): microseconds and a trailing zero.
        let text = t.to_rfc3339_opts(SecondsFormat::Micros, true);
        format!("{}0Z", text.trim_end_matches('Z'))
    }
}

/// `[-][d.]hh:mm:ss[.fffffff]`, as Kusto writes timespans.
pub(super) fn format_timespan(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let total = micros.unsigned_abs();
    let day = MICROS_PER_DAY.unsigned_abs();
    let second = MICROS_PER_SECOND.unsigned_abs();
    let (days, rest) = (total / day, total % day);
    let (hours, rest) = (rest / (3600 * second), rest % (3600 * second));
    let (minutes, rest) = (rest / (60 * second), rest % (60 * second));
    let (seconds, fraction) = (rest / second, rest % second);
    let mut text = String::from(sign);
    if days > 0 {
        text.push_str(&format!("{days}."));
    }
    text.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
    if fraction > 0 {
        text.push_str(&format!(".{:07}", fraction * 10));
    }
    text
}

/// A timespan literal's unit in microseconds (`d`, `h`, `m`, `s`, `ms`, `microsecond`, `tick`
/// and their long forms).
pub(super) fn timespan_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "d" | "day" | "days" => MICROS_PER_DAY as f64,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0 * MICROS_PER_SECOND as f64,
        "m" | "min" | "minute" | "minutes" => 60.0 * MICROS_PER_SECOND as f64,
        "s" | "sec" | "second" | "seconds" => MICROS_PER_SECOND as f64,
        "ms" | "millisecond" | "milliseconds" => 1000.0,
        "microsecond" | "microseconds" => 1.0,
        "tick" | "ticks" => 0.1,
        _ => return None,
    })
}
