//! Importing VEX documents at a scope: each statement about a product is kept (the latest per
//! vulnerability and product wins, as OpenVEX specifies), and a `not_affected` or `fixed` one becomes
//! an exemption of category `Mitigated` whose justification quotes the statement and names the
//! document. `affected` and `under_investigation` change no verdict: they are kept, shown on the
//! findings they name, and remove the exemption an earlier statement about the same product made.
//!
//! Decisions:
//! - A statement about an image (`pkg:oci/…@sha256:…`) reaches that digest in the scope, narrowed to
//!   its subcomponents' packages when it names any; one about a package reaches that package (and
//!   version, `=` in the ecosystem's order, when the package URL has one) in every image of the scope.
//! - The vulnerability matches a finding's advisory id or any alias, through the statement's name and
//!   its aliases.
//! - Re-importing a document changes nothing and writes no history; a statement older than the one
//!   kept for its vulnerability and product is skipped (counted as superseded).

use std::collections::BTreeSet;

use diesel::QueryResult;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::domain::{
    Criteria, ExemptionCategory, ExemptionScope, PackageCriterion, VexClaim, VexDocument,
    VexProduct,
};
use crate::jobs::exemptions::{self, ExemptionSpec};
use crate::store::{self, AnyConnection, vex::VexStatementRow};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VexImported {
    /// Statements about one product each (a statement naming three products counts three).
    pub statements: usize,
    /// New or changed statements kept.
    pub recorded: usize,
    /// Statements already kept as they are (a re-import).
    pub unchanged: usize,
    /// Statements older than the one kept for their vulnerability and product.
    pub superseded: usize,
    pub exemptions_created: usize,
    pub exemptions_updated: usize,
    /// Exemptions of earlier `not_affected`/`fixed` statements that a later `affected` or
    /// `under_investigation` one removed.
    pub exemptions_removed: usize,
    /// Present findings the document's exemptions exempt now.
    pub exempt_findings: i64,
    /// The exemptions the document's statements stand behind, by resource id.
    pub exemptions: Vec<String>,
}

/// The key of a statement: its scope, vulnerability and product.
fn statement_key(scope: &ExemptionScope, claim: &VexClaim) -> String {
    let mut hash = Sha256::new();
    hash.update(scope.id().to_ascii_lowercase());
    hash.update([0]);
    hash.update(claim.vulnerability.to_ascii_lowercase());
    hash.update([0]);
    hash.update(claim.product.purl());
    hex::encode(hash.finalize())
}

/// The exemption a mitigating statement stands behind.
fn exemption_name(key: &str) -> String {
    format!("vex-{}", &key[..32])
}

fn package_criterion(package: &crate::domain::VexPackage) -> PackageCriterion {
    PackageCriterion {
        name: package.name.clone(),
        ecosystem: package.ecosystem.clone(),
        version_range: package.version.as_ref().map(|v| format!("={v}")),
    }
}

fn criteria_of(claim: &VexClaim) -> Criteria {
    let advisory_ids = std::iter::once(claim.vulnerability.clone())
        .chain(claim.aliases.iter().cloned())
        .collect();
    match &claim.product {
        VexProduct::Image {
            digest, packages, ..
        } => Criteria {
            advisory_ids,
            image_digests: vec![digest.as_str().to_owned()],
            packages: packages.iter().map(package_criterion).collect(),
            ..Criteria::default()
        },
        VexProduct::Package(package) => Criteria {
            advisory_ids,
            packages: vec![package_criterion(package)],
            ..Criteria::default()
        },
    }
}

fn justification_of(claim: &VexClaim, document: &VexDocument) -> String {
    let mut text = format!("VEX {}", claim.status.as_str());
    if let Some(label) = &claim.justification {
        text.push_str(&format!(" ({label})"));
    }
    if let Some(impact) = &claim.impact_statement {
        text.push_str(&format!(": {impact}"));
    }
    text.push_str(&format!(
        ". Statement by {} in {}.",
        document.author, document.id
    ));
    text.chars().take(4000).collect()
}

fn row_of(
    scope: &ExemptionScope,
    key: &str,
    claim: &VexClaim,
    document: &VexDocument,
    actor: &str,
    now: i64,
) -> VexStatementRow {
    let (image_digest, packages) = match &claim.product {
        VexProduct::Image {
            digest, packages, ..
        } => (Some(digest.as_str().to_owned()), packages.clone()),
        VexProduct::Package(package) => (None, vec![package.clone()]),
    };
    let packages: Vec<serde_json::Value> = packages
        .iter()
        .map(|p| {
            serde_json::json!({"name": p.name, "ecosystem": p.ecosystem, "version": p.version, "purl": p.purl})
        })
        .collect();
    VexStatementRow {
        id: key.to_owned(),
        subscription_id: scope.subscription().as_str().to_owned(),
        scope: scope.id(),
        vulnerability: claim.vulnerability.clone(),
        aliases: serde_json::to_string(&claim.aliases).unwrap_or_else(|_| "[]".to_owned()),
        product: claim.product.purl().to_owned(),
        image_digest,
        packages: serde_json::to_string(&packages).unwrap_or_else(|_| "[]".to_owned()),
        status: claim.status.as_str().to_owned(),
        justification: claim.justification.clone(),
        impact_statement: claim.impact_statement.clone(),
        action_statement: claim.action_statement.clone(),
        stated_at: claim.at,
        document_id: document.id.clone(),
        author: document.author.clone(),
        imported_by: actor.to_owned(),
        imported_at: now,
        exemption_id: None,
    }
}

/// Whether `kept` already says what `row` says (a re-import of the same statement).
fn same_statement(kept: &VexStatementRow, row: &VexStatementRow) -> bool {
    kept.stated_at == row.stated_at
        && kept.status == row.status
        && kept.document_id == row.document_id
        && kept.justification == row.justification
        && kept.impact_statement == row.impact_statement
        && kept.action_statement == row.action_statement
        && kept.aliases == row.aliases
        && kept.packages == row.packages
}

/// Imports a checked document at `scope` in one transaction (the caller's), then weighs the
/// scope's findings once.
pub fn import(
    conn: &mut AnyConnection,
    scope: &ExemptionScope,
    document: &VexDocument,
    actor: &str,
    now: i64,
) -> QueryResult<VexImported> {
    let mut out = VexImported {
        statements: document.claims.len(),
        ..VexImported::default()
    };
    let mut standing: BTreeSet<String> = BTreeSet::new();
    let mut changed = false;
    for claim in &document.claims {
        let key = statement_key(scope, claim);
        let mut row = row_of(scope, &key, claim, document, actor, now);
        let kept = store::vex::get(conn, &key)?;
        if let Some(kept) = &kept {
            if kept.stated_at > row.stated_at {
                out.superseded += 1;
                continue;
            }
            if same_statement(kept, &row) {
                out.unchanged += 1;
                if let Some(exemption) = &kept.exemption_id {
                    standing.insert(exemption.clone());
                }
                continue;
            }
        }
        changed = true;
        out.recorded += 1;
        let name = exemption_name(&key);
        if claim.status.mitigates() {
            let spec = ExemptionSpec {
                criteria: criteria_of(claim),
                category: ExemptionCategory::Mitigated,
                justification: justification_of(claim, document),
                expires_at: None,
                display_name: Some(
                    format!("VEX {} {}", claim.status.as_str(), claim.vulnerability)
                        .chars()
                        .take(256)
                        .collect(),
                ),
            };
            let (before, written) = exemptions::write(conn, scope, &name, &spec, actor, now)?;
            if before.is_some() {
                out.exemptions_updated += 1;
            } else {
                out.exemptions_created += 1;
            }
            standing.insert(written.id.clone());
            row.exemption_id = Some(written.id);
        } else {
            let id = exemptions::exemption_key(scope, &name);
            if exemptions::remove(conn, scope, &id, actor, now)?.is_some() {
                out.exemptions_removed += 1;
            }
        }
        store::vex::put(conn, &row)?;
    }
    if changed {
        exemptions::apply(conn, scope, None)?;
    }
    let ids: Vec<String> = standing.into_iter().collect();
    let counts = store::exemptions::exempt_counts(conn, &ids)?;
    out.exempt_findings = counts.values().sum();
    out.exemptions = ids.iter().map(|id| format!("/{id}")).collect();
    Ok(out)
}
