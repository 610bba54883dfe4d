//! Turns an image's matches into `findings` rows: the sub-assessments the API serves.

use sha2::{Digest as _, Sha256};

use crate::domain::{RegistryId, finding_name, mdvm_vulnerability_count};
use crate::scanner::advisories::matcher::Match;
use crate::store::findings::FindingRow;
use crate::store::images::ImageRow;
use crate::store::registries::RegistryRow;

/// One row per (advisory, package) of the image, each `first_seen = last_seen = now` (the merge
/// keeps the stored `first_seen`). A package listed twice yields one finding; when its copies were
/// read from different files, its `file_path` names each, `; `-separated, in inventory order.
pub fn rows(
    registry: &RegistryRow,
    image: &ImageRow,
    matches: &[Match],
    now: i64,
) -> Vec<FindingRow> {
    let mut out: Vec<FindingRow> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for m in matches {
        let row = row(registry, image, m, now);
        let Some(&first) = index.get(&row.id) else {
            index.insert(row.id.clone(), out.len());
            out.push(row);
            continue;
        };
        let kept = &mut out[first];
        if let Some(path) = row.file_path {
            match &mut kept.file_path {
                Some(paths) if paths.split("; ").any(|p| p == path) => {}
                Some(paths) => {
                    paths.push_str("; ");
                    paths.push_str(&path);
                    kept.fingerprint = fingerprint(kept);
                }
                None => {
                    kept.file_path = Some(path);
                    kept.fingerprint = fingerprint(kept);
                }
            }
        }
    }
    out
}

/// The finding a match makes in an image: its stable name, what the API shows, and the
/// fingerprint the merge compares.
pub fn row(registry: &RegistryRow, image: &ImageRow, m: &Match, now: i64) -> FindingRow {
    let registry_id = RegistryId::format(
        &registry.subscription_id,
        &registry.resource_group,
        &registry.name,
    );
    let id = finding_name(
        &registry.subscription_id,
        &registry_id,
        &image.repository,
        &image.digest,
        &m.advisory_id,
        &m.package_name,
    )
    .to_string();
    let cves = serde_json::to_string(&m.cves).unwrap_or_else(|_| "[]".to_owned());
    let mut row = FindingRow {
        id,
        subscription_id: registry.subscription_id.clone(),
        resource_group: registry.resource_group.clone(),
        registry_id: registry.id.clone(),
        registry_name: registry.name.clone(),
        image_id: image.id.clone(),
        repository: image.repository.clone(),
        image_digest: image.digest.clone(),
        advisory_id: m.advisory_id.clone(),
        package_name: m.package_name.clone(),
        installed_version: m.installed_version.clone(),
        fixed_version: m.fixed_version.clone(),
        ecosystem: m.ecosystem.clone(),
        category: m.category.clone(),
        severity: m.severity.as_str().to_owned(),
        severity_source: m.severity_source.clone(),
        cvss2_base: m.cvss_v2,
        cvss3_base: m.cvss_v3,
        display_name: m.display_name.clone(),
        description: m.description.clone(),
        remediation: m.remediation.clone(),
        impact: m.impact.clone(),
        mdvm_vulnerabilities: mdvm_vulnerability_count(&m.advisory_id, &cves) as i32,
        exempted_by: None,
        cves,
        vendor_references: serde_json::to_string(&m.vendor_references)
            .unwrap_or_else(|_| "[]".to_owned()),
        published_at: m.published.map(|p| p.timestamp_micros()),
        patchable: m.patchable,
        layer_digest: m.layer_digest.clone(),
        first_seen: now,
        last_seen: now,
        resolved_at: None,
        fingerprint: String::new(),
        severity_rank: m.severity.rank(),
        file_path: m.file_path.clone(),
    };
    row.fingerprint = fingerprint(&row);
    row
}

/// A hash of everything an assessment decides about a finding (not its identity or its times).
fn fingerprint(row: &FindingRow) -> String {
    let content = serde_json::json!([
        row.installed_version,
        row.fixed_version,
        row.ecosystem,
        row.category,
        row.severity,
        row.severity_source,
        row.cvss2_base,
        row.cvss3_base,
        row.display_name,
        row.description,
        row.remediation,
        row.impact,
        row.cves,
        row.vendor_references,
        row.published_at,
        row.patchable,
        row.layer_digest,
    ]);
    // Appended only when present, so findings stored before file paths were recorded keep
    // their fingerprint until a path is known.
    let content = match (&row.file_path, content) {
        (Some(path), serde_json::Value::Array(mut parts)) => {
            parts.push(serde_json::json!(path));
            serde_json::Value::Array(parts)
        }
        (_, content) => content,
    };
    hex::encode(Sha256::digest(content.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> RegistryRow {
        RegistryRow {
            id: "r".to_owned(),
            subscription_id: "sub".to_owned(),
            resource_group: "rg".to_owned(),
            name: "reg".to_owned(),
            login_server: "reg.example.com".to_owned(),
            insecure: false,
            credentials: None,
            webhook_secret_sha256: "0".repeat(64),
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn one_finding_names_every_file_its_package_was_read_from() {
        let registry = registry();
        let image = ImageRow::unscanned(&registry, "team/app", "sha256:abc", 1);
        let copy = |advisory: &str, file: Option<&str>| Match {
            advisory_id: advisory.to_owned(),
            package_name: "stdlib".to_owned(),
            installed_version: "1.19.8".to_owned(),
            file_path: file.map(str::to_owned),
            ..Match::default()
        };
        let matches = [
            copy("GO-2023-2102", Some("usr/local/bin/hello")),
            copy("GO-2023-2102", Some("usr/local/bin/nomod")),
            copy("GO-2023-2102", Some("usr/local/bin/hello")),
            copy("GO-2023-2102", None),
            copy("GO-2022-0969", Some("usr/local/bin/nomod")),
        ];
        let rows = rows(&registry, &image, &matches, 1);
        let got: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.advisory_id.as_str(), r.file_path.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "GO-2023-2102",
                    Some("usr/local/bin/hello; usr/local/bin/nomod")
                ),
                ("GO-2022-0969", Some("usr/local/bin/nomod")),
            ]
        );
        let single = row(&registry, &image, &matches[0], 1);
        assert_ne!(
            rows[0].fingerprint, single.fingerprint,
            "the second file counts"
        );
    }
}
