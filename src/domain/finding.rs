use uuid::Uuid;

/// Namespace of finding names (UUID v5), fixed forever: changing it renames every sub-assessment.
const FINDING_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_5d3b_4c7a_9e21_0b8d_4f3a_c5e7);

/// A sub-assessment's name: the same image, advisory and package always give the same name, so a
/// finding keeps its identity across rescans.
pub fn finding_name(
    subscription: &str,
    registry_id: &str,
    repository: &str,
    image_digest: &str,
    advisory_id: &str,
    package: &str,
) -> Uuid {
    // NUL cannot occur in any part, so the joined string is unambiguous.
    let key = [
        subscription,
        registry_id,
        repository,
        image_digest,
        advisory_id,
        package,
    ]
    .join("\0");
    Uuid::new_v5(&FINDING_NAMESPACE, key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let a = finding_name(
            "s",
            "/subscriptions/s/…/r",
            "app",
            "sha256:1",
            "CVE-1",
            "openssl",
        );
        assert_eq!(
            a,
            finding_name(
                "s",
                "/subscriptions/s/…/r",
                "app",
                "sha256:1",
                "CVE-1",
                "openssl"
            )
        );
        assert_ne!(
            a,
            finding_name(
                "s",
                "/subscriptions/s/…/r",
                "app",
                "sha256:1",
                "CVE-1",
                "openssl-libs"
            )
        );
        assert_ne!(
            a,
            finding_name(
                "s",
                "/subscriptions/s/…/r",
                "app",
                "sha256:1",
                "CVE-2",
                "openssl"
            )
        );
        assert_eq!(a.get_version_num(), 5);
    }
}
