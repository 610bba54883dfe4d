use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{inventories, packages};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = inventories)]
pub struct InventoryRow {
    pub manifest_digest: String,
    /// The analyzers that built it: `name@version`, sorted, comma-separated.
    pub analyzers: String,
    /// The OS release, JSON; None when no analyzer recognised one.
    pub os: Option<String>,
    pub layers: i32,
    pub created_at: i64,
    /// The files no analyzer could read (`UnreadablePath` list, JSON); None when there are none.
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = packages)]
pub struct PackageRow {
    pub manifest_digest: String,
    pub seq: i32,
    pub kind: String,
    pub name: String,
    pub version: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub layer_digest: Option<String>,
    pub file_path: Option<String>,
    pub owner: Option<String>,
}

/// Rows per multi-row INSERT (10 columns; SQLite allows 32,766 bound parameters).
const INSERT_CHUNK: usize = 1000;

pub fn find(
    conn: &mut AnyConnection,
    manifest_digest: &str,
) -> QueryResult<Option<(InventoryRow, Vec<PackageRow>)>> {
    let Some(inventory) = inventories::table
        .find(manifest_digest)
        .select(InventoryRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let packages = packages::table
        .filter(packages::manifest_digest.eq(manifest_digest))
        .order(packages::seq.asc())
        .select(PackageRow::as_select())
        .load(conn)?;
    Ok(Some((inventory, packages)))
}

/// The OS release (JSON) of each of these manifests' inventories that has one.
pub fn os_of(
    conn: &mut AnyConnection,
    manifest_digests: &[&str],
) -> QueryResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for chunk in manifest_digests.chunks(500) {
        out.extend(
            inventories::table
                .filter(inventories::manifest_digest.eq_any(chunk))
                .filter(inventories::os.is_not_null())
                .select((
                    inventories::manifest_digest,
                    inventories::os.assume_not_null(),
                ))
                .load::<(String, String)>(conn)?,
        );
    }
    Ok(out)
}

/// Stores an inventory in place of any older one for the same manifest; run it in a transaction.
pub fn replace(
    conn: &mut AnyConnection,
    inventory: &InventoryRow,
    rows: &[PackageRow],
) -> QueryResult<()> {
    diesel::delete(
        packages::table.filter(packages::manifest_digest.eq(&inventory.manifest_digest)),
    )
    .execute(conn)?;
    diesel::delete(inventories::table.find(&inventory.manifest_digest)).execute(conn)?;
    diesel::insert_into(inventories::table)
        .values(inventory)
        .execute(conn)?;
    for chunk in rows.chunks(INSERT_CHUNK) {
        on_each_backend!(conn, c => diesel::insert_into(packages::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Each (OS release JSON, package kind) pair the stored inventories hold, once: enough to tell
/// which advisory ecosystems their packages are matched in.
pub fn os_and_kinds(conn: &mut AnyConnection) -> QueryResult<Vec<(Option<String>, String)>> {
    inventories::table
        .inner_join(packages::table)
        .select((inventories::os, packages::kind))
        .distinct()
        .load(conn)
}

/// How many inventories are stored and when the newest was written: moves whenever an inventory
/// is added or rebuilt, so what was derived from [`os_and_kinds`] can be kept until it does.
pub fn fingerprint(conn: &mut AnyConnection) -> QueryResult<(i64, Option<i64>)> {
    inventories::table
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::max(inventories::created_at),
        ))
        .first(conn)
}
