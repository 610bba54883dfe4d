//! Stored inventories: an image's OS and packages per manifest digest, reused while the analyzers
//! that built them are unchanged.

use crate::domain::Timestamp;
use crate::scanner::advisories::matcher::{Inventory, InventoryPackage, PackageKind};
use crate::store::inventories::{InventoryRow, PackageRow};
use crate::store::{self, AnyConnection};

/// Stores `inventory` for `manifest_digest`, built by `analyzers` (see `analyzers::cache_key`).
pub fn save(
    conn: &mut AnyConnection,
    manifest_digest: &str,
    analyzers: &str,
    layers: usize,
    inventory: &Inventory,
) -> diesel::QueryResult<()> {
    let row = InventoryRow {
        manifest_digest: manifest_digest.to_owned(),
        analyzers: analyzers.to_owned(),
        os: inventory
            .os
            .as_ref()
            .and_then(|os| serde_json::to_string(os).ok()),
        layers: i32::try_from(layers).unwrap_or(i32::MAX),
        created_at: Timestamp::now().micros(),
        unreadable: (!inventory.unreadable.is_empty())
            .then(|| serde_json::to_string(&inventory.unreadable).ok())
            .flatten(),
    };
    let packages: Vec<PackageRow> = inventory
        .packages
        .iter()
        .enumerate()
        .map(|(seq, p)| PackageRow {
            manifest_digest: manifest_digest.to_owned(),
            seq: i32::try_from(seq).unwrap_or(i32::MAX),
            kind: kind_name(p.kind),
            name: p.name.clone(),
            version: p.version.clone(),
            source_name: p.source_name.clone(),
            source_version: p.source_version.clone(),
            layer_digest: p.layer_digest.clone(),
            file_path: p.file_path.clone(),
            owner: p.owner.clone(),
        })
        .collect();
    store::inventories::replace(conn, &row, &packages)
}

/// The stored inventory, when one exists and was built by exactly these analyzers.
pub fn load(
    conn: &mut AnyConnection,
    manifest_digest: &str,
    analyzers: &str,
) -> diesel::QueryResult<Option<Inventory>> {
    let Some((row, packages)) = store::inventories::find(conn, manifest_digest)? else {
        return Ok(None);
    };
    if row.analyzers != analyzers {
        return Ok(None);
    }
    let os = row
        .os
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok());
    let mut out = Vec::with_capacity(packages.len());
    for p in packages {
        // A kind this build does not know (written by a newer one): rebuild rather than guess.
        let Some(kind) = kind_from_name(&p.kind) else {
            return Ok(None);
        };
        out.push(InventoryPackage {
            kind,
            name: p.name,
            version: p.version,
            source_name: p.source_name,
            source_version: p.source_version,
            layer_digest: p.layer_digest,
            file_path: p.file_path,
            owner: p.owner,
        });
    }
    let unreadable = row
        .unreadable
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    Ok(Some(Inventory {
        os,
        packages: out,
        unreadable,
    }))
}

fn kind_name(kind: PackageKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn kind_from_name(name: &str) -> Option<PackageKind> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}
