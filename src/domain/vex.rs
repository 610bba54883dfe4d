//! OpenVEX 0.2 documents (<https://openvex.dev/ns/v0.2.0>): parsed and checked field by field, so a
//! refusal names its field, and flattened into claims, one per statement and product.
//!
//! Decisions:
//! - A product is addressed by its `@id` or `identifiers.purl`, a package URL. `pkg:oci/…@sha256:…`
//!   names an image (its digest); any other type names a package (`pkg:deb/debian/openssl@3.0.11-1`).
//!   A statement's subcomponents narrow an image to those packages.
//! - A statement's time is its `timestamp`, else its `last_updated`, else the document's.
//! - `not_affected` needs a `justification` or an `impact_statement`; `affected` may carry an
//!   `action_statement`. Unknown fields are ignored, as JSON-LD readers do.

use std::str::FromStr;

use serde_json::Value;

use super::Digest;

/// The only `@context` accepted.
pub const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotAffected => "not_affected",
            Self::Affected => "affected",
            Self::Fixed => "fixed",
            Self::UnderInvestigation => "under_investigation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NotAffected,
            Self::Affected,
            Self::Fixed,
            Self::UnderInvestigation,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether the statement says the findings it names do not need fixing.
    pub const fn mitigates(self) -> bool {
        matches!(self, Self::NotAffected | Self::Fixed)
    }
}

/// The justification labels of `not_affected`.
pub const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// A package a product or subcomponent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexPackage {
    pub name: String,
    /// The OSV ecosystem family of the purl's type (`Debian`, `Alpine`, `PyPI`, …), when known.
    pub ecosystem: Option<String>,
    pub version: Option<String>,
    /// The package URL as written.
    pub purl: String,
}

/// What a product is: an image, or a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VexProduct {
    Image {
        digest: Digest,
        /// The subcomponents' packages: the statement is about those in the image (empty: all).
        packages: Vec<VexPackage>,
        purl: String,
    },
    Package(VexPackage),
}

impl VexProduct {
    /// The product's package URL: what, with the vulnerability, a later statement supersedes.
    pub fn purl(&self) -> &str {
        match self {
            Self::Image { purl, .. } => purl,
            Self::Package(p) => &p.purl,
        }
    }
}

/// One statement about one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexClaim {
    pub vulnerability: String,
    /// The vulnerability's other names (its `aliases`), without the name itself.
    pub aliases: Vec<String>,
    pub product: VexProduct,
    pub status: VexStatus,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    /// When the statement was known to be true, in microseconds.
    pub at: i64,
}

/// A checked document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexDocument {
    pub id: String,
    pub author: String,
    pub claims: Vec<VexClaim>,
}

/// What is wrong with a document, naming the field (`statements[2].products[0].@id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct VexError {
    pub field: String,
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> VexError {
    VexError {
        field: field.into(),
        message: message.into(),
    }
}

fn text<'a>(object: &'a Value, key: &str, at: &str) -> Result<Option<&'a str>, VexError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(error(
            format!("{at}{key}"),
            "must not be empty when present",
        )),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(format!("{at}{key}"), "must be a string")),
    }
}

fn required<'a>(object: &'a Value, key: &str, at: &str) -> Result<&'a str, VexError> {
    text(object, key, at)?.ok_or_else(|| error(format!("{at}{key}"), "is required"))
}

fn time(raw: &str, field: &str) -> Result<i64, VexError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_micros())
        .map_err(|_| error(field, "must be an RFC 3339 time"))
}

/// The OSV ecosystem family of a purl type; `None` for types without one here.
fn ecosystem_of(purl_type: &str, namespace: Option<&str>) -> Option<String> {
    Some(
        match (purl_type, namespace.map(str::to_ascii_lowercase).as_deref()) {
            ("deb", Some("ubuntu")) => "Ubuntu",
            ("deb", _) => "Debian",
            ("apk", Some("wolfi")) => "Wolfi",
            ("apk", Some("chainguard")) => "Chainguard",
            ("apk", _) => "Alpine",
            ("pypi", _) => "PyPI",
            ("npm", _) => "npm",
            ("maven", _) => "Maven",
            ("golang", _) => "Go",
            ("cargo", _) => "crates.io",
            ("gem", _) => "RubyGems",
            ("composer", _) => "Packagist",
            ("nuget", _) => "NuGet",
            _ => return None,
        }
        .to_owned(),
    )
}

/// A package URL, parsed.
fn purl<'a>(raw: &'a str, field: &str) -> Result<packageurl::PackageUrl<'a>, VexError> {
    packageurl::PackageUrl::from_str(raw)
        .map_err(|e| error(field, format!("is not a package URL ({e}): {raw:.100}")))
}

fn package(raw: &str, field: &str) -> Result<VexPackage, VexError> {
    let parsed = purl(raw, field)?;
    // Maven and Composer name a package `namespace/name` (`group:artifact` for Maven).
    let name = match (parsed.ty(), parsed.namespace()) {
        ("maven", Some(group)) => format!("{group}:{}", parsed.name()),
        ("composer" | "golang" | "npm", Some(namespace)) => {
            format!("{namespace}/{}", parsed.name())
        }
        _ => parsed.name().to_owned(),
    };
    Ok(VexPackage {
        name,
        ecosystem: ecosystem_of(parsed.ty(), parsed.namespace()),
        version: parsed.version().map(str::to_owned),
        purl: raw.to_owned(),
    })
}

/// A component's package URL: its `@id`, else `identifiers.purl`.
fn component_purl<'a>(component: &'a Value, at: &str) -> Result<&'a str, VexError> {
    if let Some(id) = text(component, "@id", at)? {
        return Ok(id);
    }
    let identifiers = component.get("identifiers").unwrap_or(&Value::Null);
    text(identifiers, "purl", &format!("{at}identifiers."))?.ok_or_else(|| {
        error(
            format!("{at}@id"),
            "is required: a package URL (pkg:oci/…@sha256:… for an image, pkg:deb/…, pkg:pypi/…, …), or identifiers.purl",
        )
    })
}

fn product(component: &Value, at: &str) -> Result<VexProduct, VexError> {
    if !component.is_object() {
        return Err(error(at.trim_end_matches('.'), "must be an object"));
    }
    let raw = component_purl(component, at)?;
    let field = format!("{at}@id");
    let parsed = purl(raw, &field)?;
    if parsed.ty() != "oci" {
        return package(raw, &field).map(VexProduct::Package);
    }
    let digest = parsed
        .version()
        .and_then(|v| Digest::parse(v).ok())
        .ok_or_else(|| {
            error(
                &field,
                format!("an image's package URL names its digest: pkg:oci/<name>@sha256%3A<64 hex digits>, not {raw:.100}"),
            )
        })?;
    let mut packages = Vec::new();
    match component.get("subcomponents") {
        None | Some(Value::Null) => {}
        Some(Value::Array(subcomponents)) => {
            for (i, sub) in subcomponents.iter().enumerate() {
                let at = format!("{at}subcomponents[{i}].");
                let raw = component_purl(sub, &at)?;
                packages.push(package(raw, &format!("{at}@id"))?);
            }
        }
        Some(_) => return Err(error(format!("{at}subcomponents"), "must be an array")),
    }
    Ok(VexProduct::Image {
        digest,
        packages,
        purl: raw.to_owned(),
    })
}

impl VexDocument {
    /// Checks an OpenVEX 0.2 document and flattens it into claims.
    pub fn parse(document: &Value) -> Result<Self, VexError> {
        if !document.is_object() {
            return Err(error("$", "an OpenVEX document is a JSON object"));
        }
        let context = required(document, "@context", "")?;
        if context != OPENVEX_CONTEXT {
            return Err(error(
                "@context",
                format!("must be {OPENVEX_CONTEXT} (OpenVEX 0.2); got {context:.100}"),
            ));
        }
        let id = required(document, "@id", "")?.to_owned();
        let author = required(document, "author", "")?.to_owned();
        let issued = time(required(document, "timestamp", "")?, "timestamp")?;
        let document_updated = text(document, "last_updated", "")?
            .map(|t| time(t, "last_updated"))
            .transpose()?;
        let Some(Value::Array(statements)) = document.get("statements") else {
            return Err(error("statements", "is required: an array of statements"));
        };
        if statements.is_empty() {
            return Err(error("statements", "must hold at least one statement"));
        }
        let mut claims = Vec::new();
        for (i, statement) in statements.iter().enumerate() {
            let at = format!("statements[{i}].");
            if !statement.is_object() {
                return Err(error(format!("statements[{i}]"), "must be an object"));
            }
            let vulnerability = statement.get("vulnerability").unwrap_or(&Value::Null);
            if !vulnerability.is_object() {
                return Err(error(
                    format!("{at}vulnerability"),
                    "is required: an object with a name",
                ));
            }
            let name = required(vulnerability, "name", &format!("{at}vulnerability."))?;
            let mut aliases = Vec::new();
            match vulnerability.get("aliases") {
                None | Some(Value::Null) => {}
                Some(Value::Array(values)) => {
                    for (k, alias) in values.iter().enumerate() {
                        match alias.as_str().map(str::trim) {
                            Some(a) if !a.is_empty() => {
                                if !a.eq_ignore_ascii_case(name) {
                                    aliases.push(a.to_owned());
                                }
                            }
                            _ => {
                                return Err(error(
                                    format!("{at}vulnerability.aliases[{k}]"),
                                    "must be a non-empty string",
                                ));
                            }
                        }
                    }
                }
                Some(_) => {
                    return Err(error(
                        format!("{at}vulnerability.aliases"),
                        "must be an array of strings",
                    ));
                }
            }
            let raw_status = required(statement, "status", &at)?;
            let status = VexStatus::parse(raw_status).ok_or_else(|| {
                error(
                    format!("{at}status"),
                    format!("must be not_affected, affected, fixed or under_investigation; got {raw_status:.40}"),
                )
            })?;
            let justification = text(statement, "justification", &at)?;
            if let Some(j) = justification
                && !JUSTIFICATIONS.contains(&j)
            {
                return Err(error(
                    format!("{at}justification"),
                    format!("must be one of {}", JUSTIFICATIONS.join(", ")),
                ));
            }
            let impact_statement = text(statement, "impact_statement", &at)?;
            if status == VexStatus::NotAffected
                && justification.is_none()
                && impact_statement.is_none()
            {
                return Err(error(
                    format!("{at}justification"),
                    "a not_affected statement needs a justification or an impact_statement",
                ));
            }
            let action_statement = text(statement, "action_statement", &at)?;
            let at_time = match (
                text(statement, "timestamp", &at)?,
                text(statement, "last_updated", &at)?,
            ) {
                (_, Some(updated)) => time(updated, &format!("{at}last_updated"))?,
                (Some(stamp), None) => time(stamp, &format!("{at}timestamp"))?,
                (None, None) => document_updated.unwrap_or(issued),
            };
            let Some(Value::Array(products)) = statement.get("products") else {
                return Err(error(
                    format!("{at}products"),
                    "is required: the products (images or packages) the statement is about",
                ));
            };
            if products.is_empty() {
                return Err(error(
                    format!("{at}products"),
                    "must name at least one product",
                ));
            }
            for (p, component) in products.iter().enumerate() {
                claims.push(VexClaim {
                    vulnerability: name.to_owned(),
                    aliases: aliases.clone(),
                    product: product(component, &format!("{at}products[{p}]."))?,
                    status,
                    justification: justification.map(str::to_owned),
                    impact_statement: impact_statement.map(str::to_owned),
                    action_statement: action_statement.map(str::to_owned),
                    at: at_time,
                });
            }
        }
        Ok(Self { id, author, claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = "tests/fixtures/openvex/spec-example.json";

    fn read(path: &str) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn the_spec_example_is_a_fixed_statement_about_two_packages() {
        let document = VexDocument::parse(&read(SPEC_EXAMPLE)).unwrap();
        assert_eq!(document.author, "Wolfi J Inkinson");
        assert_eq!(document.claims.len(), 2);
        let claim = &document.claims[0];
        assert_eq!(claim.vulnerability, "CVE-2023-12345");
        assert_eq!(claim.status, VexStatus::Fixed);
        let VexProduct::Package(package) = &claim.product else {
            panic!("{claim:?}");
        };
        assert_eq!(package.name, "git");
        assert_eq!(package.ecosystem.as_deref(), Some("Wolfi"));
        assert_eq!(package.version.as_deref(), Some("2.39.0-r1"));
    }

    #[test]
    fn image_products_name_a_digest_and_their_subcomponents() {
        let document =
            VexDocument::parse(&read("tests/fixtures/openvex/go-vex-v0.2.0.json")).unwrap();
        let not_affected: Vec<&VexClaim> = document
            .claims
            .iter()
            .filter(|c| c.status == VexStatus::NotAffected)
            .collect();
        assert!(!not_affected.is_empty());
        let claim = not_affected[0];
        assert_eq!(
            claim.justification.as_deref(),
            Some("vulnerable_code_not_present")
        );
        let VexProduct::Image {
            digest, packages, ..
        } = &claim.product
        else {
            panic!("{claim:?}");
        };
        assert_eq!(
            digest.as_str(),
            "sha256:124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126"
        );
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["libssl3", "libcrypto3"]);
        assert!(
            packages
                .iter()
                .all(|p| p.ecosystem.as_deref() == Some("Alpine"))
        );
    }

    #[test]
    fn malformed_documents_name_their_field() {
        let good = read(SPEC_EXAMPLE);
        let broken = |edit: &dyn Fn(&mut Value)| {
            let mut doc = good.clone();
            edit(&mut doc);
            VexDocument::parse(&doc).unwrap_err().field
        };
        assert_eq!(
            broken(&|d| d["@context"] = "https://openvex.dev/ns".into()),
            "@context"
        );
        assert_eq!(
            broken(&|d| d["timestamp"] = "yesterday".into()),
            "timestamp"
        );
        assert_eq!(
            broken(&|d| d["statements"][0]["status"] = "fine".into()),
            "statements[0].status"
        );
        assert_eq!(
            broken(&|d| d["statements"][0]["status"] = "not_affected".into()),
            "statements[0].justification"
        );
        assert_eq!(
            broken(&|d| d["statements"][0]["products"][1]["@id"] = "git 2.39".into()),
            "statements[0].products[1].@id"
        );
        assert_eq!(
            broken(&|d| d["statements"][0]["products"][0]["@id"] = "pkg:oci/alpine@latest".into()),
            "statements[0].products[0].@id"
        );
        assert_eq!(
            broken(&|d| {
                d["statements"][0]["vulnerability"] = serde_json::json!({"aliases": ["x"]})
            }),
            "statements[0].vulnerability.name"
        );
        assert_eq!(
            broken(&|d| d["statements"] = serde_json::json!([])),
            "statements"
        );
    }
}
