//! Rows of `vex_statements`: the latest statement of imported VEX documents per scope,
//! vulnerability and product.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::vex_statements;
use crate::domain::{ExemptionScope, FindingPlace, cve_ids};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = vex_statements, treat_none_as_null = true)]
pub struct VexStatementRow {
    /// A hash of the scope, the vulnerability (lower case) and the product's package URL.
    pub id: String,
    pub subscription_id: String,
    /// The canonical scope id the document was imported at.
    pub scope: String,
    pub vulnerability: String,
    /// JSON array of the vulnerability's other names.
    pub aliases: String,
    /// The product's package URL.
    pub product: String,
    /// The image digest of a `pkg:oci/…` product.
    pub image_digest: Option<String>,
    /// JSON array of `{name, ecosystem, version, purl}`: the product's package, or an image's
    /// subcomponents.
    pub packages: String,
    /// `not_affected`, `affected`, `fixed` or `under_investigation`.
    pub status: String,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub action_statement: Option<String>,
    pub stated_at: i64,
    pub document_id: String,
    pub author: String,
    pub imported_by: String,
    pub imported_at: i64,
    /// The exemption a `not_affected` or `fixed` statement made.
    pub exemption_id: Option<String>,
}

pub fn get(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<VexStatementRow>> {
    vex_statements::table
        .find(id)
        .select(VexStatementRow::as_select())
        .first(conn)
        .optional()
}

/// Writes the row, replacing the one with its id.
pub fn put(conn: &mut AnyConnection, row: &VexStatementRow) -> QueryResult<()> {
    let updated = diesel::update(vex_statements::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(vex_statements::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// The statements of these subscriptions about any of `vulnerabilities` (exact names).
pub fn about(
    conn: &mut AnyConnection,
    subscriptions: &[String],
    vulnerabilities: &[String],
) -> QueryResult<Vec<VexStatementRow>> {
    let mut out = Vec::new();
    for chunk in vulnerabilities.chunks(500) {
        out.extend(
            vex_statements::table
                .filter(vex_statements::subscription_id.eq_any(subscriptions))
                .filter(vex_statements::vulnerability.eq_any(chunk))
                .select(VexStatementRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// The statements of a subscription whose scope is `scope` or lies under it, by id.
pub fn under(
    conn: &mut AnyConnection,
    subscription: &str,
    scope: &str,
) -> QueryResult<Vec<VexStatementRow>> {
    let lower = scope.to_ascii_lowercase();
    let rows: Vec<VexStatementRow> = vex_statements::table
        .filter(vex_statements::subscription_id.eq(subscription))
        .order(vex_statements::id.asc())
        .select(VexStatementRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            let s = r.scope.to_ascii_lowercase();
            s == lower || s.starts_with(&format!("{lower}/"))
        })
        .collect())
}

/// What of a finding the statements about it are found by.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'a> {
    pub id: &'a str,
    pub place: FindingPlace<'a>,
    pub advisory_id: &'a str,
    /// JSON links, as in `findings.cves`.
    pub cves: &'a str,
    pub package_name: &'a str,
}

/// The kept statements about each of these findings (by finding id): those whose vulnerability
/// is the finding's advisory or one of its CVE ids, whose scope covers it, and whose product is
/// its image (and package, when the statement names subcomponents) or its package.
pub fn on_findings(
    conn: &mut AnyConnection,
    rows: &[Finding<'_>],
) -> QueryResult<HashMap<String, Vec<Arc<VexStatementRow>>>> {
    let mut out: HashMap<String, Vec<Arc<VexStatementRow>>> = HashMap::new();
    let subscriptions: Vec<String> = rows
        .iter()
        .map(|r| r.place.subscription.to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let any: Vec<String> = vex_statements::table
        .filter(vex_statements::subscription_id.eq_any(&subscriptions))
        .select(vex_statements::id)
        .limit(1)
        .load(conn)?;
    if any.is_empty() {
        return Ok(out);
    }
    let ids_of = |row: &Finding<'_>| {
        let mut ids = cve_ids(row.cves);
        ids.push(row.advisory_id.to_owned());
        ids
    };
    let names: Vec<String> = rows
        .iter()
        .flat_map(ids_of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let statements: Vec<Arc<VexStatementRow>> = about(conn, &subscriptions, &names)?
        .into_iter()
        .map(Arc::new)
        .collect();
    for row in rows {
        let ids = ids_of(row);
        for statement in &statements {
            if ids.contains(&statement.vulnerability) && reaches(statement, row) {
                out.entry(row.id.to_owned())
                    .or_default()
                    .push(Arc::clone(statement));
            }
        }
    }
    Ok(out)
}

fn reaches(statement: &VexStatementRow, row: &Finding<'_>) -> bool {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    let in_scope = ExemptionScope::parse(&statement.scope).is_ok_and(|s| s.covers(&row.place));
    let image = statement
        .image_digest
        .as_ref()
        .is_none_or(|d| d == row.place.digest);
    let packages: Vec<Named> = serde_json::from_str(&statement.packages).unwrap_or_default();
    let package = packages.is_empty() || packages.iter().any(|p| p.name == row.package_name);
    in_scope && image && package
}
