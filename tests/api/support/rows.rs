//! Rows to seed the store with: a registry, an image and a realistic finding.

use crowsnest::domain::{Severity, Timestamp};
use crowsnest::jobs::findings;
use crowsnest::scanner::advisories::matcher::{Link, Match};
use crowsnest::store;
use crowsnest::store::findings::FindingRow;
use crowsnest::store::images::ImageRow;
use crowsnest::store::registries::RegistryRow;

use crate::support::images::sha256_digest;

/// A made-up `sha256:` digest, the same for the same seed.
pub fn digest_of(seed: &str) -> String {
    sha256_digest(seed.as_bytes())
}

pub fn registry_row(subscription: &str, resource_group: &str, name: &str) -> RegistryRow {
    let now = Timestamp::now().micros();
    RegistryRow {
        id: store::new_id(),
        subscription_id: subscription.to_owned(),
        resource_group: resource_group.to_owned(),
        name: name.to_owned(),
        login_server: format!("{name}.{resource_group}.{subscription}.example.com"),
        insecure: false,
        credentials: None,
        webhook_secret_sha256: "0".repeat(64),
        created_at: now,
        updated_at: now,
    }
}

pub fn image_row(registry: &RegistryRow, repository: &str, digest: &str) -> ImageRow {
    ImageRow {
        id: store::new_id(),
        registry_id: registry.id.clone(),
        subscription_id: registry.subscription_id.clone(),
        repository: repository.to_owned(),
        digest: digest.to_owned(),
        index_digest: None,
        platform: Some("linux/amd64".to_owned()),
        os: Some("debian 12".to_owned()),
        health: "Unhealthy".to_owned(),
        health_reason: None,
        pushed_at: Some(Timestamp::now().micros()),
        pulled_at: None,
        scanned_at: Some(Timestamp::now().micros()),
        running: false,
        created_at: Timestamp::now().micros(),
        coverage: None,
        advisories_synced_at: None,
        unreadable_files: 0,
        media_type: None,
        os_version: Some("debian_linux_12".to_owned()),
    }
}

/// A realistic Debian finding; tests change the fields they care about.
pub fn finding_row(
    registry: &RegistryRow,
    image: &ImageRow,
    advisory: &str,
    package: &str,
) -> FindingRow {
    let now = Timestamp::now().micros();
    let link = |title: &str, link: String| Link {
        title: title.to_owned(),
        link,
    };
    let found = Match {
        advisory_id: advisory.to_owned(),
        package_name: package.to_owned(),
        installed_version: "3.0.11-1~deb12u1".to_owned(),
        fixed_version: Some("3.0.11-1~deb12u2".to_owned()),
        ecosystem: "Debian:12".to_owned(),
        category: "Debian".to_owned(),
        severity: Severity::High,
        severity_source: "cvss3".to_owned(),
        cvss_v2: Some(7.5),
        cvss_v3: Some(8.1),
        display_name: format!("{package}: {advisory}"),
        description: format!("{advisory} affects {package}."),
        remediation: format!(
            "Upgrade {package} from 3.0.11-1~deb12u1 to 3.0.11-1~deb12u2 or later."
        ),
        impact: "High".to_owned(),
        cves: vec![link(
            advisory,
            format!("https://nvd.nist.gov/vuln/detail/{advisory}"),
        )],
        vendor_references: vec![link(
            "DSA-5532-1",
            "https://security-tracker.debian.org/tracker/DSA-5532-1".to_owned(),
        )],
        published: chrono::DateTime::from_timestamp_micros(now - 86_400_000_000),
        patchable: true,
        layer_digest: Some(digest_of("layer")),
        ..Match::default()
    };
    findings::row(registry, image, &found, now)
}

/// A stored advisory `id` with `aliases` and nothing to match (for findings seeded by hand).
pub fn advisory(id: &str, aliases: &[&str]) -> store::advisories::NewAdvisory {
    store::advisories::NewAdvisory::without_packages(
        id.to_owned(),
        format!("{id} (seeded)"),
        aliases.iter().map(|a| (*a).to_owned()).collect(),
        Timestamp::now().micros(),
    )
}
