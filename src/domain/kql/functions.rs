//! The scalar functions and aggregations a query may call, with their arities, and the scalar
//! functions' meaning (the aggregations run in `engine`).

use chrono::{DateTime, Datelike, Timelike};
use regex::Regex;
use serde_json::Value;

use super::value::{MICROS_PER_DAY, Scalar, parse_datetime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    ToString,
    ToLong,
    ToReal,
    ToDatetime,
    ToTimespan,
    ToBool,
    ParseJson,
    Extract,
    Split,
    Strcat,
    Strlen,
    Substring,
    ToLower,
    ToUpper,
    Trim,
    TrimStart,
    TrimEnd,
    ReplaceString,
    ReplaceRegex,
    Iff,
    Case,
    Coalesce,
    IsNull,
    IsNotNull,
    IsEmpty,
    IsNotEmpty,
    ArrayLength,
    BagKeys,
    PackArray,
    Ago,
    Now,
    StartOfDay,
    Bin,
    FormatDatetime,
    Not,
    Abs,
    Round,
}

impl Function {
    /// The function a name calls, with its least and most argument counts.
    pub(super) fn lookup(name: &str) -> Option<(Self, usize, usize)> {
        use Function::*;
        Some(match name {
            "tostring" | "string" => (ToString, 1, 1),
            "toint" | "tolong" | "int" | "long" => (ToLong, 1, 1),
            "toreal" | "todouble" | "todecimal" | "real" | "double" => (ToReal, 1, 1),
            "todatetime" => (ToDatetime, 1, 1),
            "totimespan" => (ToTimespan, 1, 1),
            "tobool" | "toboolean" | "bool" => (ToBool, 1, 1),
            "parse_json" | "todynamic" | "toobject" => (ParseJson, 1, 1),
            "extract" => (Extract, 3, 4),
            "split" => (Split, 2, 3),
            "strcat" => (Strcat, 1, 64),
            "strlen" => (Strlen, 1, 1),
            "substring" => (Substring, 2, 3),
            "tolower" => (ToLower, 1, 1),
            "toupper" => (ToUpper, 1, 1),
            "trim" => (Trim, 2, 2),
            "trim_start" => (TrimStart, 2, 2),
            "trim_end" => (TrimEnd, 2, 2),
            "replace_string" => (ReplaceString, 3, 3),
            "replace_regex" => (ReplaceRegex, 3, 3),
            "iff" | "iif" => (Iff, 3, 3),
            "case" => (Case, 3, 255),
            "coalesce" => (Coalesce, 1, 64),
            "isnull" => (IsNull, 1, 1),
            "isnotnull" => (IsNotNull, 1, 1),
            "isempty" => (IsEmpty, 1, 1),
            "isnotempty" => (IsNotEmpty, 1, 1),
            "array_length" => (ArrayLength, 1, 1),
            "bag_keys" => (BagKeys, 1, 1),
            "pack_array" => (PackArray, 1, 64),
            "ago" => (Ago, 1, 1),
            "now" => (Now, 0, 1),
            "startofday" => (StartOfDay, 1, 2),
            "bin" | "floor" => (Bin, 2, 2),
            "format_datetime" => (FormatDatetime, 2, 2),
            "not" => (Not, 1, 1),
            "abs" => (Abs, 1, 1),
            "round" => (Round, 1, 2),
            _ => return None,
        })
    }

    /// Which argument is a regular expression (compiled once when written as a literal).
    pub(super) fn pattern_argument(self) -> Option<usize> {
        match self {
            Self::Extract | Self::Trim | Self::TrimStart | Self::TrimEnd => Some(0),
            Self::ReplaceRegex => Some(1),
            _ => None,
        }
    }

    /// Functions whose arguments are evaluated lazily (`iff`, `case`, `coalesce`) are applied by
    /// the evaluator; this applies the rest to evaluated arguments. `pattern` is the compiled
    /// regular expression argument, when there is one.
    pub(super) fn apply(self, args: &[Scalar], pattern: Option<&Regex>, now: i64) -> Scalar {
        use Function::*;
        let arg = |i: usize| args.get(i).unwrap_or(&Scalar::Null);
        let text = |i: usize| arg(i).to_text();
        match self {
            ToString => Scalar::Str(text(0).into_owned()),
            ToLong => to_long(arg(0)),
            ToReal => to_real(arg(0)),
            ToDatetime => arg(0).as_datetime().map_or(Scalar::Null, Scalar::Datetime),
            ToTimespan => match arg(0).typed().as_ref() {
                Scalar::Timespan(t) => Scalar::Timespan(*t),
                Scalar::Long(n) => Scalar::Timespan(n / 10),
                _ => Scalar::Null,
            },
            ToBool => to_bool(arg(0)),
            ParseJson => parse_json(arg(0)),
            Extract => {
                let Some(regex) = pattern else {
                    return Scalar::Null;
                };
                let group = arg(1).as_i64().and_then(|g| usize::try_from(g).ok());
                let found = group.and_then(|g| {
                    regex
                        .captures(&text(2))
                        .and_then(|c| c.get(g))
                        .map(|m| m.as_str().to_owned())
                });
                match (found, args.get(3)) {
                    (Some(s), Some(Scalar::Str(kind))) => convert_text(&s, kind),
                    (Some(s), _) => Scalar::Str(s),
                    (None, Some(_)) => Scalar::Null,
                    (None, None) => Scalar::Str(String::new()),
                }
            }
            Split => {
                let (whole, delimiter) = (text(0), text(1));
                let parts: Vec<Value> = if delimiter.is_empty() {
                    vec![Value::String(whole.into_owned())]
                } else {
                    whole
                        .split(delimiter.as_ref())
                        .map(|p| Value::String(p.to_owned()))
                        .collect()
                };
                match args.get(2) {
                    None => Scalar::Dynamic(Value::Array(parts)),
                    Some(index) => {
                        let picked = index
                            .as_i64()
                            .and_then(|i| usize::try_from(i).ok())
                            .and_then(|i| parts.get(i).cloned());
                        Scalar::Dynamic(Value::Array(picked.into_iter().collect()))
                    }
                }
            }
            Strcat => Scalar::Str(args.iter().map(|a| a.to_text()).collect()),
            Strlen => Scalar::Long(text(0).chars().count() as i64),
            Substring => {
                let whole = text(0);
                let start = arg(1).as_i64().unwrap_or(0).max(0) as usize;
                let chars = whole.chars().skip(start);
                Scalar::Str(match args.get(2) {
                    Some(length) => {
                        let length = length.as_i64().unwrap_or(0).max(0) as usize;
                        chars.take(length).collect()
                    }
                    None => chars.collect(),
                })
            }
            ToLower => Scalar::Str(text(0).to_lowercase()),
            ToUpper => Scalar::Str(text(0).to_uppercase()),
            Trim | TrimStart | TrimEnd => {
                let Some(regex) = pattern else {
                    return Scalar::Null;
                };
                Scalar::Str(trim(&text(1), regex, self != TrimEnd, self != TrimStart))
            }
            ReplaceString => {
                let lookup = text(1);
                if lookup.is_empty() {
                    return Scalar::Str(text(0).into_owned());
                }
                Scalar::Str(text(0).replace(lookup.as_ref(), &text(2)))
            }
            ReplaceRegex => match pattern {
                // Kusto writes groups as \1; the regex crate as ${1}.
                Some(regex) => {
                    let rewrite = Regex::new(r"\\(\d)")
                        .map(|r| r.replace_all(&text(2), "$${$1}").into_owned())
                        .unwrap_or_default();
                    Scalar::Str(regex.replace_all(&text(0), rewrite.as_str()).into_owned())
                }
                None => Scalar::Null,
            },
            IsNull => Scalar::Bool(arg(0).is_null()),
            IsNotNull => Scalar::Bool(!arg(0).is_null()),
            IsEmpty => Scalar::Bool(is_empty(arg(0))),
            IsNotEmpty => Scalar::Bool(!is_empty(arg(0))),
            ArrayLength => match arg(0) {
                Scalar::Dynamic(Value::Array(items)) => Scalar::Long(items.len() as i64),
                _ => Scalar::Null,
            },
            BagKeys => match arg(0) {
                Scalar::Dynamic(Value::Object(bag)) => Scalar::Dynamic(Value::Array(
                    bag.keys().map(|k| Value::String(k.clone())).collect(),
                )),
                _ => Scalar::Null,
            },
            PackArray => Scalar::Dynamic(Value::Array(args.iter().map(Scalar::to_json).collect())),
            Ago => match arg(0).typed().as_ref() {
                Scalar::Timespan(t) => Scalar::Datetime(now.saturating_sub(*t)),
                _ => Scalar::Null,
            },
            Now => match args.first().map(|a| a.typed().into_owned()) {
                None => Scalar::Datetime(now),
                Some(Scalar::Timespan(t)) => Scalar::Datetime(now.saturating_add(t)),
                Some(_) => Scalar::Null,
            },
            StartOfDay => {
                let Some(t) = arg(0).as_datetime() else {
                    return Scalar::Null;
                };
                let offset = args.get(1).and_then(Scalar::as_i64).unwrap_or(0);
                let day = t.div_euclid(MICROS_PER_DAY).saturating_add(offset);
                Scalar::Datetime(day.saturating_mul(MICROS_PER_DAY))
            }
            Bin => bin(arg(0), arg(1)),
            FormatDatetime => match arg(0).as_datetime() {
                Some(t) => Scalar::Str(format_with(t, &text(1))),
                None => Scalar::Str(String::new()),
            },
            Not => match arg(0).typed().as_ref() {
                Scalar::Bool(b) => Scalar::Bool(!b),
                _ => Scalar::Null,
            },
            Abs => match arg(0).typed().as_ref() {
                Scalar::Long(n) => n.checked_abs().map_or(Scalar::Null, Scalar::Long),
                Scalar::Real(r) => Scalar::Real(r.abs()),
                Scalar::Timespan(t) => t.checked_abs().map_or(Scalar::Null, Scalar::Timespan),
                _ => Scalar::Null,
            },
            Round => {
                let digits = args
                    .get(1)
                    .and_then(Scalar::as_i64)
                    .unwrap_or(0)
                    .clamp(-15, 15);
                match arg(0).as_f64() {
                    Some(x) => {
                        let scale = 10f64.powi(digits as i32);
                        Scalar::Real((x * scale).round() / scale)
                    }
                    None => Scalar::Null,
                }
            }
            // Evaluated lazily by the evaluator.
            Iff | Case | Coalesce => Scalar::Null,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aggregation {
    Count,
    CountIf,
    DCount,
    MakeSet,
    MakeList,
    Min,
    Max,
    Sum,
    Avg,
    ArgMax,
    ArgMin,
    TakeAny,
}

impl Aggregation {
    /// The aggregation a name calls, with its least and most argument counts and the prefix of
    /// the output column Kusto names it by (`count_`, `min_x`, `set_x`, …).
    pub(super) fn lookup(name: &str) -> Option<(Self, usize, usize, &'static str)> {
        use Aggregation::*;
        Some(match name {
            "count" => (Count, 0, 0, "count_"),
            "countif" => (CountIf, 1, 1, "countif_"),
            "dcount" => (DCount, 1, 2, "dcount_"),
            "make_set" | "makeset" => (MakeSet, 1, 2, "set_"),
            "make_list" | "makelist" => (MakeList, 1, 2, "list_"),
            "min" => (Min, 1, 1, "min_"),
            "max" => (Max, 1, 1, "max_"),
            "sum" => (Sum, 1, 1, "sum_"),
            "avg" => (Avg, 1, 1, "avg_"),
            "arg_max" => (ArgMax, 1, 64, ""),
            "arg_min" => (ArgMin, 1, 64, ""),
            "take_any" | "any" => (TakeAny, 1, 1, "take_any_"),
            _ => return None,
        })
    }
}

fn to_long(value: &Scalar) -> Scalar {
    match value.typed().as_ref() {
        Scalar::Long(n) => Scalar::Long(*n),
        Scalar::Real(r) if r.is_finite() && r.abs() < 9.2e18 => Scalar::Long(r.trunc() as i64),
        Scalar::Bool(b) => Scalar::Long(i64::from(*b)),
        Scalar::Str(s) => {
            let s = s.trim();
            s.parse::<i64>().map_or_else(
                |_| match s.parse::<f64>() {
                    Ok(r) if r.is_finite() && r.abs() < 9.2e18 => Scalar::Long(r.trunc() as i64),
                    _ => Scalar::Null,
                },
                Scalar::Long,
            )
        }
        _ => Scalar::Null,
    }
}

fn to_real(value: &Scalar) -> Scalar {
    match value.typed().as_ref() {
        Scalar::Long(n) => Scalar::Real(*n as f64),
        Scalar::Real(r) => Scalar::Real(*r),
        Scalar::Bool(b) => Scalar::Real(if *b { 1.0 } else { 0.0 }),
        Scalar::Str(s) => s.trim().parse::<f64>().map_or(Scalar::Null, Scalar::Real),
        _ => Scalar::Null,
    }
}

fn to_bool(value: &Scalar) -> Scalar {
    match value.typed().as_ref() {
        Scalar::Bool(b) => Scalar::Bool(*b),
        Scalar::Long(n) => Scalar::Bool(*n != 0),
        Scalar::Real(r) => Scalar::Bool(*r != 0.0),
        Scalar::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Scalar::Bool(true),
            "false" | "0" => Scalar::Bool(false),
            _ => Scalar::Null,
        },
        _ => Scalar::Null,
    }
}

fn parse_json(value: &Scalar) -> Scalar {
    match value {
        Scalar::Str(s) | Scalar::Dynamic(Value::String(s)) => serde_json::from_str::<Value>(s)
            .map_or_else(
                |_| Scalar::Dynamic(Value::String(s.clone())),
                Scalar::dynamic,
            ),
        Scalar::Null => Scalar::Null,
        other => Scalar::dynamic(other.to_json()),
    }
}

/// Converts captured text to the type `extract`'s `typeof()` names.
pub(super) fn convert_text(text: &str, kind: &str) -> Scalar {
    let value = Scalar::Str(text.to_owned());
    match kind {
        "long" | "int" => to_long(&value),
        "real" | "double" | "decimal" => to_real(&value),
        "bool" | "boolean" => to_bool(&value),
        "datetime" => parse_datetime(text).map_or(Scalar::Null, Scalar::Datetime),
        "dynamic" => parse_json(&value),
        _ => value,
    }
}

fn is_empty(value: &Scalar) -> bool {
    match value.typed().as_ref() {
        Scalar::Null => true,
        Scalar::Str(s) => s.is_empty(),
        _ => false,
    }
}

fn trim(text: &str, regex: &Regex, start: bool, end: bool) -> String {
    let mut rest = text;
    if start {
        while let Some(m) = regex.find(rest) {
            if m.start() != 0 || m.end() == 0 {
                break;
            }
            rest = &rest[m.end()..];
        }
    }
    if end {
        loop {
            let found = regex
                .find_iter(rest)
                .find(|m| m.end() == rest.len() && m.start() < m.end());
            match found {
                Some(m) => rest = &rest[..m.start()],
                None => break,
            }
        }
    }
    rest.to_owned()
}

fn bin(value: &Scalar, size: &Scalar) -> Scalar {
    match (value.typed().as_ref(), size.typed().as_ref()) {
        (Scalar::Long(v), Scalar::Long(s)) if *s > 0 => Scalar::Long(v.div_euclid(*s) * s),
        (Scalar::Long(_) | Scalar::Real(_), Scalar::Long(_) | Scalar::Real(_)) => {
            match (value.as_f64(), size.as_f64()) {
                (Some(v), Some(s)) if s > 0.0 => Scalar::Real((v / s).floor() * s),
                _ => Scalar::Null,
            }
        }
        (Scalar::Timespan(v), Scalar::Timespan(s)) if *s > 0 => {
            Scalar::Timespan(v.div_euclid(*s) * s)
        }
        (_, Scalar::Timespan(s)) if *s > 0 => match value.as_datetime() {
            Some(t) => Scalar::Datetime(t.div_euclid(*s) * s),
            None => Scalar::Null,
        },
        _ => Scalar::Null,
    }
}

/// `format_datetime`'s .NET-style format: `yyyy yy MM M dd d HH H hh h mm m ss s f… tt`, other
/// characters as written.
fn format_with(micros: i64, format: &str) -> String {
    let Some(t) = DateTime::from_timestamp_micros(micros) else {
        return String::new();
    };
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let piece = match (c, run) {
            ('y', 4..) => format!("{:04}", t.year()),
            ('y', _) => format!("{:02}", t.year() % 100),
            ('M', 1) => t.month().to_string(),
            ('M', _) => format!("{:02}", t.month()),
            ('d', 1) => t.day().to_string(),
            ('d', _) => format!("{:02}", t.day()),
            ('H', 1) => t.hour().to_string(),
            ('H', _) => format!("{:02}", t.hour()),
            ('h', 1) => t.hour12().1.to_string(),
            ('h', _) => format!("{:02}", t.hour12().1),
            ('m', 1) => t.minute().to_string(),
            ('m', _) => format!("{:02}", t.minute()),
            ('s', 1) => t.second().to_string(),
            ('s', _) => format!("{:02}", t.second()),
            ('f' | 'F', n) => {
                let ticks = format!("{:07}", t.nanosecond() / 100);
                ticks.chars().take(n.min(7)).collect()
            }
            ('t', _) => (if t.hour12().0 { "PM" } else { "AM" }).to_owned(),
            (other, n) => std::iter::repeat_n(other, n).collect(),
        };
        out.push_str(&piece);
        i += run;
    }
    out
}
