//! Rows of `vex_statements`: the latest statement of imported VEX documents per scope,
//! vulnerability and product.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::vex_statements;

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
