//! The two assessments Crowsnest serves its findings under, and what the MDVM one derives from a
//! finding: its per-CVE sub-assessment names and Azure's spelling of an OS version.
//!
//! * `dbd0cb49-…` ("Container registry images should have vulnerability findings resolved", the
//!   2020 dialect): one sub-assessment per finding, named by the finding.
//! * `c0b7cfc6-…` ("… powered by Microsoft Defender Vulnerability Management"): one sub-assessment
//!   per CVE a finding's advisory names (its id, aliases and upstream ids that are CVEs), each named
//!   UUID v5 of (the finding's name as namespace, the CVE id); a finding whose advisory names no CVE
//!   (a GHSA without one, an ALSA) is one sub-assessment under the advisory id, named the same way.

use std::borrow::Cow;

use uuid::Uuid;

/// The key of the "Container registry images should have vulnerability findings resolved" assessment.
pub const CONTAINER_REGISTRY_ASSESSMENT_KEY: &str = "dbd0cb49-b563-45e7-9724-889e799fa648";

/// The key of "Azure registry container images should have vulnerabilities resolved (powered by
/// Microsoft Defender Vulnerability Management)".
pub const MDVM_ASSESSMENT_KEY: &str = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5";

/// An assessment Crowsnest serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssessmentKey {
    /// `dbd0cb49-…`: one sub-assessment per finding, `ContainerRegistryVulnerability` data.
    ContainerRegistry,
    /// `c0b7cfc6-…`: one sub-assessment per (finding, CVE), `AzureContainerRegistryVulnerability`.
    Mdvm,
}

impl AssessmentKey {
    pub const ALL: [AssessmentKey; 2] = [Self::ContainerRegistry, Self::Mdvm];

    /// Keys are compared without regard to case, as Azure compares them.
    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(key))
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ContainerRegistry => CONTAINER_REGISTRY_ASSESSMENT_KEY,
            Self::Mdvm => MDVM_ASSESSMENT_KEY,
        }
    }

    /// The assessment's display name, as Azure's recommendation names it.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::ContainerRegistry => {
                "Container registry images should have vulnerability findings resolved"
            }
            Self::Mdvm => {
                "Azure registry container images should have vulnerabilities resolved (powered by Microsoft Defender Vulnerability Management)"
            }
        }
    }
}

/// The name of the MDVM sub-assessment of `finding` (its UUID name) for `vulnerability` (a CVE id,
/// or the advisory id when the advisory names no CVE): stable as long as the finding is.
pub fn mdvm_sub_assessment_name(finding: &str, vulnerability: &str) -> Uuid {
    let namespace = Uuid::parse_str(finding).unwrap_or(Uuid::nil());
    Uuid::new_v5(&namespace, vulnerability.as_bytes())
}

/// The vulnerabilities a finding is shown as under the MDVM key, from its CVE ids (the advisory's
/// own id, aliases and upstream ids that are CVEs, as the finding stores them): each CVE once,
/// sorted, or the advisory id alone when there is none.
pub fn mdvm_vulnerabilities<'a>(
    advisory_id: &'a str,
    cves: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut ids: Vec<&str> = cves.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        ids.push(advisory_id);
    }
    ids
}

/// The CVE ids a finding names (its `cves` column: `[{title, link}]`, titles being CVE ids).
pub fn cve_ids(cves_json: &str) -> Vec<String> {
    cve_titles(cves_json)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

/// How many sub-assessments a finding is under the MDVM key: [`mdvm_vulnerabilities`] of its
/// `cves` column, counted without copying the ids.
pub fn mdvm_vulnerability_count(advisory_id: &str, cves_json: &str) -> usize {
    let titles = cve_titles(cves_json);
    mdvm_vulnerabilities(advisory_id, titles.iter().map(AsRef::as_ref)).len()
}

/// The titles of the `cves` column's links, borrowed from the text where no escape forbids it.
fn cve_titles(cves_json: &str) -> Vec<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Titled<'a> {
        #[serde(borrow)]
        title: Cow<'a, str>,
    }
    serde_json::from_str::<Vec<Titled<'_>>>(cves_json)
        .map(|links| links.into_iter().map(|l| l.title).collect())
        .unwrap_or_default()
}

/// Azure's spelling of an OS release in `softwareDetails.osDetails.osVersion`, from
/// `/etc/os-release`'s `ID` and `VERSION_ID`: `ubuntu_linux_20.04` (Ubuntu's version as given),
/// `debian_linux_12` (Debian's major version), `alpine_linux_3.19` (Alpine's major.minor). Other
/// families have no documented Azure spelling and are given as os-release states them,
/// `{ID}_{VERSION_ID}` (`rhel_9.3`); an image without os-release (or without a version) gives
/// `None`.
pub fn azure_os_version(id: &str, version_id: Option<&str>) -> Option<String> {
    let id = id.trim().to_ascii_lowercase();
    let version = version_id.map(str::trim).filter(|v| !v.is_empty())?;
    if id.is_empty() {
        return None;
    }
    let leading = |parts: usize| version.split('.').take(parts).collect::<Vec<_>>().join(".");
    Some(match id.as_str() {
        "ubuntu" => format!("ubuntu_linux_{version}"),
        "debian" => format!("debian_linux_{}", leading(1)),
        "alpine" => format!("alpine_linux_{}", leading(2)),
        _ => format!("{id}_{version}"),
    })
}

/// The language MDVM names for a language ecosystem's packages (`softwareDetails.language`, in
/// lower case as Azure writes `python`); `None` for an OS release's ecosystem (`Debian:12`).
pub fn package_language(ecosystem: &str) -> Option<&'static str> {
    Some(match ecosystem {
        "PyPI" => "python",
        "npm" => "javascript",
        "crates.io" => "rust",
        "Go" => "go",
        "Maven" => "java",
        "RubyGems" => "ruby",
        "Packagist" => "php",
        "NuGet" => ".net",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mdvm_count_is_that_of_the_vulnerabilities() {
        let link = |id: &str| {
            format!(r#"{{"title":"{id}","link":"https://nvd.nist.gov/vuln/detail/{id}"}}"#)
        };
        for cves in [
            "[]".to_owned(),
            "not json".to_owned(),
            format!("[{}]", link("CVE-2024-1")),
            format!(
                "[{},{},{}]",
                link("CVE-2024-2"),
                link("CVE-2024-1"),
                link("CVE-2024-2")
            ),
            r#"[{"title":"CVE-2024-\u0031","link":""},{"title":"CVE-2024-1","link":""}]"#
                .to_owned(),
        ] {
            let ids = cve_ids(&cves);
            assert_eq!(
                mdvm_vulnerability_count("DSA-1", &cves),
                mdvm_vulnerabilities("DSA-1", ids.iter().map(String::as_str)).len(),
                "{cves}"
            );
        }
    }

    #[test]
    fn keys_parse_without_regard_to_case() {
        assert_eq!(
            AssessmentKey::parse("C0B7CFC6-3172-465A-B378-53C7FF2CC0D5"),
            Some(AssessmentKey::Mdvm)
        );
        assert_eq!(
            AssessmentKey::parse(CONTAINER_REGISTRY_ASSESSMENT_KEY),
            Some(AssessmentKey::ContainerRegistry)
        );
        assert_eq!(AssessmentKey::parse("c0b7cfc6"), None);
    }

    #[test]
    fn names_are_stable_per_finding_and_cve() {
        let finding = "6f1c2a8e-5d3b-4c7a-9e21-0b8d4f3ac5e7";
        let a = mdvm_sub_assessment_name(finding, "CVE-2024-1");
        assert_eq!(a, mdvm_sub_assessment_name(finding, "CVE-2024-1"));
        assert_ne!(a, mdvm_sub_assessment_name(finding, "CVE-2024-2"));
        assert_ne!(
            a,
            mdvm_sub_assessment_name("7f1c2a8e-5d3b-4c7a-9e21-0b8d4f3ac5e7", "CVE-2024-1")
        );
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn a_finding_is_each_cve_once_or_its_advisory() {
        assert_eq!(
            mdvm_vulnerabilities("DSA-1", ["CVE-2", "CVE-1", "CVE-2"]),
            vec!["CVE-1", "CVE-2"]
        );
        assert_eq!(mdvm_vulnerabilities("GHSA-x", []), vec!["GHSA-x"]);
    }

    #[test]
    fn os_versions_are_spelled_as_azure_spells_them() {
        assert_eq!(
            azure_os_version("ubuntu", Some("20.04")).as_deref(),
            Some("ubuntu_linux_20.04")
        );
        assert_eq!(
            azure_os_version("debian", Some("12")).as_deref(),
            Some("debian_linux_12")
        );
        assert_eq!(
            azure_os_version("debian", Some("12.4")).as_deref(),
            Some("debian_linux_12")
        );
        assert_eq!(
            azure_os_version("alpine", Some("3.19.1")).as_deref(),
            Some("alpine_linux_3.19")
        );
        assert_eq!(
            azure_os_version("rhel", Some("9.3")).as_deref(),
            Some("rhel_9.3")
        );
        assert_eq!(azure_os_version("debian", None), None);
    }
}
