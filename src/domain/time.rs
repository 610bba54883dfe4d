use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time, stored as microseconds since the Unix epoch (portable across SQLite and PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_micros())
    }

    /// A span in the same unit as stored times (saturating).
    pub fn span_micros(d: std::time::Duration) -> i64 {
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// RFC 3339 in UTC with a `Z`, as ARM writes times.
    pub fn rfc3339(self) -> String {
        self.datetime().to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}
