use std::fmt;

/// A finding's severity. The 2019 Sub-Assessments API knows Low/Medium/High only, so Critical is
/// shown there as High and kept in Crowsnest's extension fields.
/// Medium is the default: the severity of an advisory that states none (`severitySource: default`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }

    /// A sort key: Low 1, Medium 2, High 3, Critical 4.
    pub fn rank(self) -> i32 {
        match self {
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
            Self::Critical => 4,
        }
    }

    /// The severity with this [`rank`](Self::rank); `None` for any other number.
    pub fn from_rank(rank: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.rank() == rank)
    }

    /// The value of `status.severity` in the 2019-01-01-preview API.
    pub fn azure_2019(self) -> Self {
        match self {
            Self::Critical => Self::High,
            other => other,
        }
    }

    /// CVSS base score bands: ≥ 9 Critical, ≥ 7 High, ≥ 4 Medium, else Low.
    pub fn from_cvss(score: f64) -> Self {
        match score {
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            _ => Self::Low,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Severity` as its display string ("High") in JSON.
pub mod severity_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::Severity;

    pub fn serialize<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Severity, D::Error> {
        let s = String::deserialize(de)?;
        Severity::parse(&s).ok_or_else(|| D::Error::custom(format!("unknown severity {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_round_trip() {
        for s in Severity::ALL {
            assert_eq!(Severity::from_rank(s.rank()), Some(s));
        }
        assert_eq!(Severity::from_rank(0), None);
        assert_eq!(Severity::from_rank(5), None);
    }

    #[test]
    fn cvss_bands_and_azure_mapping() {
        assert_eq!(Severity::from_cvss(9.8), Severity::Critical);
        assert_eq!(Severity::from_cvss(7.0), Severity::High);
        assert_eq!(Severity::from_cvss(6.9), Severity::Medium);
        assert_eq!(Severity::from_cvss(3.9), Severity::Low);
        assert_eq!(Severity::Critical.azure_2019(), Severity::High);
        assert_eq!(Severity::parse("critical"), Some(Severity::Critical));
        assert_eq!(Severity::parse("Severe"), None);
    }
}
