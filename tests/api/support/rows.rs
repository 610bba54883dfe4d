//! Rows to seed the store with: a registry, an image and a realistic finding.

use crowsnest::domain::{Timestamp, finding_name};
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
    }
}

/// A realistic Debian finding; tests change the fields they care about.
pub fn finding_row(
    registry: &RegistryRow,
    image: &ImageRow,
    advisory: &str,
    package: &str,
) -> FindingRow {
    let registry_id = crowsnest::domain::RegistryId::format(
        &registry.subscription_id,
        &registry.resource_group,
        &registry.name,
    );
    let name = finding_name(
        &registry.subscription_id,
        &registry_id,
        &image.repository,
        &image.digest,
        advisory,
        package,
    );
    let now = Timestamp::now().micros();
    FindingRow {
        id: name.to_string(),
        subscription_id: registry.subscription_id.clone(),
        resource_group: registry.resource_group.clone(),
        registry_id: registry.id.clone(),
        registry_name: registry.name.clone(),
        image_id: image.id.clone(),
        repository: image.repository.clone(),
        image_digest: image.digest.clone(),
        advisory_id: advisory.to_owned(),
        package_name: package.to_owned(),
        installed_version: "3.0.11-1~deb12u1".to_owned(),
        fixed_version: Some("3.0.11-1~deb12u2".to_owned()),
        ecosystem: "Debian:12".to_owned(),
        category: "Debian".to_owned(),
        severity: "High".to_owned(),
        severity_source: "cvss3".to_owned(),
        cvss2_base: Some(7.5),
        cvss3_base: Some(8.1),
        display_name: format!("{package}: {advisory}"),
        description: format!("{advisory} affects {package}."),
        remediation: format!("Upgrade {package} from 3.0.11-1~deb12u1 to 3.0.11-1~deb12u2 or later."),
        impact: "High".to_owned(),
        cves: serde_json::json!([{"title": advisory, "link": format!("https://nvd.nist.gov/vuln/detail/{advisory}")}]).to_string(),
        vendor_references: serde_json::json!([{"title": "DSA-5532-1", "link": "https://security-tracker.debian.org/tracker/DSA-5532-1"}]).to_string(),
        published_at: Some(now - 86_400_000_000),
        patchable: true,
        layer_digest: Some(digest_of("layer")),
        first_seen: now,
        last_seen: now,
        resolved_at: None,
        fingerprint: String::new(),
        severity_rank: 3,
    }
}
