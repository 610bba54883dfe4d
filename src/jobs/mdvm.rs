//! What the MDVM assessment (`c0b7cfc6-…`) shows of a page of findings beyond their rows, read in
//! a few queries per page: the registries' login servers, the images' push times, tags and OS
//! releases, the advisories' modification times, CWE ids and CVSS vectors as imported, and NVD's
//! CVSS vectors of the CVEs the findings name.
//!
//! Decisions:
//! * A sub-assessment's CVSS is its CVE's: NVD's vector and base score for that CVE when NVD's
//!   ratings are loaded; otherwise the advisory's own vector, but only when the advisory speaks
//!   for that one vulnerability (a finding shown as one sub-assessment), since a DSA's vector (if
//!   it had one) would not be any one of its CVEs'. Without either, the version is `null`.
//! * Nothing here is copied into findings: a new NVD load or import shows on the next read.

use std::collections::HashMap;

use diesel::QueryResult;

use crate::domain::cve_ids;
use crate::scanner::advisories::ecosystem::OsRelease;
use crate::scanner::advisories::osv::{self, SeverityScore};
use crate::scanner::advisories::ratings::RatingSource;
use crate::scanner::advisories::severity;
use crate::store::findings::{FindingScope, ListedFinding};
use crate::store::{self, AnyConnection};

/// A CVSS base score and the vector it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct CvssVector {
    pub base: f64,
    pub vector: String,
}

/// CVSS by version; `None` where nothing honest is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CvssByVersion {
    pub v2: Option<CvssVector>,
    pub v3: Option<CvssVector>,
}

impl CvssByVersion {
    /// Each version from `self`, else from `other`.
    fn or(self, other: &CvssByVersion) -> CvssByVersion {
        CvssByVersion {
            v2: self.v2.or_else(|| other.v2.clone()),
            v3: self.v3.or_else(|| other.v3.clone()),
        }
    }

    /// From OSV `severity[]` entries: the first scorable CVSS v2 and v3 vectors (v3.0 and v3.1
    /// both count as "3.0", as Azure's samples show a 3.1 vector under that key).
    fn of_entries(entries: &[SeverityScore]) -> CvssByVersion {
        let first = |kind: &str| {
            entries
                .iter()
                .filter(|e| e.kind == kind)
                .find_map(|e| {
                    severity::score(e).map(|base| CvssVector {
                        base,
                        vector: e.score.trim().to_owned(),
                    })
                })
                // A bare number is a score without a vector: not what this field says.
                .filter(|v| v.vector.contains(':'))
        };
        CvssByVersion {
            v2: first("CVSS_V2"),
            v3: first("CVSS_V3"),
        }
    }
}

/// An image as the MDVM view shows it.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    /// When the registry last notified a push of it (None: it reached Crowsnest otherwise).
    pub pushed_at: Option<i64>,
    /// Its tags in its repository, sorted.
    pub tags: Vec<String>,
    /// `linux` (the OS half of its platform; Crowsnest assesses linux images only).
    pub os_platform: String,
    /// Its inventory's `/etc/os-release`, when it has one.
    pub os: Option<OsRelease>,
    /// The media type of the manifest it was scanned from.
    pub media_type: Option<String>,
}

/// An advisory as the MDVM view shows it.
#[derive(Debug, Clone, Default)]
pub struct AdvisoryFacts {
    pub modified: i64,
    pub cwe_ids: Vec<String>,
    pub cvss: CvssByVersion,
}

/// What a page of findings shows under the MDVM key beyond the rows.
#[derive(Debug, Clone, Default)]
pub struct MdvmDetails {
    /// Registry row id → login server.
    pub login_servers: HashMap<String, String>,
    /// Image row id → facts.
    pub images: HashMap<String, ImageFacts>,
    /// Advisory id → facts.
    pub advisories: HashMap<String, AdvisoryFacts>,
    /// CVE id → NVD's vectors.
    pub nvd: HashMap<String, CvssByVersion>,
}

impl MdvmDetails {
    /// The CVSS of `vulnerability` as shown on `finding`'s sub-assessment for it; `alone` says the
    /// finding is shown as that one sub-assessment (see the module doc).
    pub fn cvss(&self, advisory_id: &str, vulnerability: &str, alone: bool) -> CvssByVersion {
        let nvd = self.nvd.get(vulnerability).cloned().unwrap_or_default();
        match self.advisories.get(advisory_id) {
            Some(advisory) if alone => nvd.or(&advisory.cvss),
            _ => nvd,
        }
    }
}

/// The [`MdvmDetails`] of a page of findings: five queries whatever its size.
pub fn details(conn: &mut AnyConnection, rows: &[ListedFinding]) -> QueryResult<MdvmDetails> {
    if rows.is_empty() {
        return Ok(MdvmDetails::default());
    }
    let distinct = |f: &dyn Fn(&ListedFinding) -> &str| {
        let mut v: Vec<String> = rows.iter().map(|r| f(r).to_owned()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let registry_ids = distinct(&|r| &r.finding.registry_id);
    let image_ids = distinct(&|r| &r.finding.image_id);
    let digests = distinct(&|r| &r.finding.image_digest);
    let advisory_ids = distinct(&|r| &r.finding.advisory_id);
    let mut cves: Vec<String> = rows.iter().flat_map(|r| cve_ids(&r.finding.cves)).collect();
    cves.sort_unstable();
    cves.dedup();

    let login_servers = store::registries::by_row_ids(conn, &registry_ids)?
        .into_iter()
        .map(|(id, r)| (id, r.login_server))
        .collect();

    let os: HashMap<String, OsRelease> = store::inventories::os_of(conn, &as_strs(&digests))?
        .into_iter()
        .filter_map(|(digest, json)| Some((digest, serde_json::from_str(&json).ok()?)))
        .collect();
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for (image_id, tag) in store::images::tags_of(conn, &image_ids)? {
        tags.entry(image_id).or_default().push(tag);
    }
    let images = store::images::by_ids(conn, &image_ids)?
        .into_iter()
        .map(|(id, image)| {
            let os_platform = image
                .platform
                .as_deref()
                .and_then(|p| p.split('/').next())
                .filter(|p| !p.is_empty())
                .unwrap_or("linux")
                .to_owned();
            let facts = ImageFacts {
                pushed_at: image.pushed_at,
                tags: tags.remove(&id).unwrap_or_default(),
                os_platform,
                os: os.get(&image.digest).cloned(),
                media_type: image.media_type.clone(),
            };
            (id, facts)
        })
        .collect();

    let advisories = store::advisories::as_imported(conn, &as_strs(&advisory_ids))?
        .into_iter()
        .map(|(id, modified, raw)| {
            let extras = osv::record_extras(&raw);
            let facts = AdvisoryFacts {
                modified,
                cwe_ids: extras.cwe_ids,
                cvss: CvssByVersion::of_entries(&extras.severity),
            };
            (id, facts)
        })
        .collect();

    let mut nvd: HashMap<String, CvssByVersion> = HashMap::new();
    for rating in store::severity_ratings::for_cves(conn, &cves)? {
        if RatingSource::parse(&rating.source) != Some(RatingSource::Nvd) {
            continue;
        }
        let entry = nvd.entry(rating.cve.clone()).or_default();
        // NVD's rating keeps one vector: the metric it rated by (v3.x when NVD has one).
        if rating.rating.starts_with("CVSS:3") {
            if let Some(base) = rating.cvss3_base {
                entry.v3 = Some(CvssVector {
                    base,
                    vector: rating.rating.clone(),
                });
            }
        } else if rating.rating.starts_with("AV:")
            && let Some(base) = rating.cvss2_base
        {
            entry.v2 = Some(CvssVector {
                base,
                vector: rating.rating.clone(),
            });
        }
    }
    Ok(MdvmDetails {
        login_servers,
        images,
        advisories,
        nvd,
    })
}

fn as_strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

/// The finding and vulnerability an MDVM sub-assessment `name` stands for, in `scope`: one
/// look-up of the stored derived names (`store::findings::find_by_mdvm_name`).
pub fn find_by_name(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    name: &uuid::Uuid,
) -> QueryResult<Option<(ListedFinding, String)>> {
    store::findings::find_by_mdvm_name(conn, scope, &name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_kept_with_their_scores() {
        let cvss = CvssByVersion::of_entries(&[
            SeverityScore {
                kind: "CVSS_V3".to_owned(),
                score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H".to_owned(),
            },
            SeverityScore {
                kind: "CVSS_V2".to_owned(),
                score: "5.0".to_owned(),
            },
        ]);
        let v3 = cvss.v3.expect("a v3 vector");
        assert_eq!(v3.base, 7.5);
        assert_eq!(v3.vector, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H");
        assert_eq!(cvss.v2, None, "a bare number has no vector");
    }

    #[test]
    fn an_advisory_vector_stands_only_for_its_one_vulnerability() {
        let mut details = MdvmDetails::default();
        let own = CvssVector {
            base: 9.8,
            vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned(),
        };
        details.advisories.insert(
            "GHSA-1".to_owned(),
            AdvisoryFacts {
                cvss: CvssByVersion {
                    v2: None,
                    v3: Some(own.clone()),
                },
                ..AdvisoryFacts::default()
            },
        );
        assert_eq!(details.cvss("GHSA-1", "CVE-1", true).v3, Some(own));
        assert_eq!(details.cvss("GHSA-1", "CVE-1", false).v3, None);
    }

    #[test]
    fn cve_ids_come_from_the_stored_links() {
        assert_eq!(
            cve_ids(r#"[{"title":"CVE-1","link":"https://nvd.nist.gov/vuln/detail/CVE-1"}]"#),
            vec!["CVE-1"]
        );
        assert!(cve_ids("not json").is_empty());
    }
}
