//! The advisory database: importing the Debian bundle (6,832 records) into SQLite and PostgreSQL,
//! then matching a 700-package Debian inventory and a 15-package Alpine inventory against everything
//! imported (warm; database round trips counted).
//!
//! cargo bench --bench advisories

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{BenchDb, DEBIAN_ZIP, import_debian_bundle, time_n};
use crowsnest::jobs::import_advisories::import_files;
use crowsnest::jobs::matching::{CandidateCache, match_stored};
use crowsnest::scanner::advisories::ecosystem::OsRelease;
use crowsnest::scanner::advisories::matcher::{Inventory, InventoryPackage, PackageKind};
use crowsnest::scanner::advisories::osv;
use crowsnest::store;

const ALPINE_ZIP: &str = "../shared/fixtures/osv/alpine-secdb.zip";
const ALPINE_DB: &str = "../shared/fixtures/pkgdb/alpine/trivy-alpine-3.4/lib/apk/db/installed";

fn main() {
    // Printed first, so that every figure below can be read against this machine's speed.
    common::baseline::Baseline::measure();
    let debian = debian_inventory();
    let mixed = mixed_debian_inventory(&debian);
    let alpine = alpine_inventory();
    for db in BenchDb::all() {
        let pool = store::connect(&db.url, 4).unwrap();
        store::migrate(&pool).unwrap();
        import_debian_bundle(&pool, db.label);
        let files = [(DEBIAN_ZIP.to_owned(), PathBuf::from(DEBIAN_ZIP))];
        let start = Instant::now();
        let again = import_files(&pool, &files, &|_| {}).unwrap();
        assert_eq!(again.unchanged, 6832);
        println!(
            "{}: re-import (all unchanged) in {:.2} s",
            db.label,
            start.elapsed().as_secs_f64()
        );
        let files = [(ALPINE_ZIP.to_owned(), PathBuf::from(ALPINE_ZIP))];
        import_files(&pool, &files, &|_| {}).unwrap();

        let mut conn = pool.get().unwrap();
        let cache = CandidateCache::default();
        for (label, inventory) in [
            ("700-package Debian 10, worst case", &debian),
            ("700-package Debian 10, mixed", &mixed),
            ("15-package Alpine 3.4", &alpine),
        ] {
            let cold = Instant::now();
            let (_, cold_cost) = match_stored(&mut conn, &cache, inventory).unwrap();
            let cold = cold.elapsed();
            for _ in 0..5 {
                match_stored(&mut conn, &cache, inventory).unwrap();
            }
            let (report, cost) = match_stored(&mut conn, &cache, inventory).unwrap();
            let summary = time_n(50, || {
                match_stored(&mut conn, &cache, inventory).unwrap();
            });
            println!(
                "{}: match {label}, cold cache: {:.2} ms, {} round trips",
                db.label,
                common::ms(cold),
                cold_cost.round_trips
            );
            println!(
                "{}: match {label}, warm: {} — {} round trip(s), {} candidates, {} matches",
                db.label,
                summary.line(),
                cost.round_trips,
                cost.candidates,
                report.matches.len()
            );
        }
    }
}

/// 700 binaries built from the Debian 10 sources the bundle names; every other one predates every
/// fix (the worst case: hundreds of matches), the rest are newer than any fix.
fn debian_inventory() -> Inventory {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(DEBIAN_ZIP).unwrap()).unwrap();
    let mut sources = std::collections::BTreeSet::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        for advisory in osv::parse_records(&bytes).into_iter().flatten() {
            for affected in advisory
                .affected
                .iter()
                .filter(|a| a.ecosystem == "Debian:10")
            {
                sources.insert(affected.name.clone());
            }
        }
    }
    let sources: Vec<String> = sources.into_iter().collect();
    let packages = (0..700)
        .map(|i| {
            let source = &sources[i % sources.len()];
            InventoryPackage {
                kind: PackageKind::Dpkg,
                name: format!("{source}-bin{i}"),
                version: if i % 2 == 0 {
                    "0.1-1".to_owned()
                } else {
                    "999:1-1".to_owned()
                },
                source_name: Some(source.clone()),
                source_version: None,
                layer_digest: Some(format!("sha256:{:064x}", i % 5)),
                file_path: None,
                owner: None,
            }
        })
        .collect();
    Inventory {
        os: Some(os_release("debian", "10")),
        packages,
        unreadable: Vec::new(),
    }
}

/// 700 packages closer to a real image's: 200 from sources with advisories (40 of them older than
/// the fixes, the rest current) and 500 from sources without any.
fn mixed_debian_inventory(worst: &Inventory) -> Inventory {
    let mut packages: Vec<InventoryPackage> = worst.packages.iter().take(200).cloned().collect();
    for (i, p) in packages.iter_mut().enumerate() {
        p.version = if i < 40 {
            "0.1-1".to_owned()
        } else {
            "999:1-1".to_owned()
        };
    }
    packages.extend((0..500).map(|i| InventoryPackage {
        kind: PackageKind::Dpkg,
        name: format!("quiet-package-{i}"),
        version: "1.0-1".to_owned(),
        source_name: None,
        source_version: None,
        layer_digest: Some(format!("sha256:{:064x}", i % 5)),
        file_path: None,
        owner: None,
    }));
    Inventory {
        os: worst.os.clone(),
        packages,
        unreadable: Vec::new(),
    }
}

/// The first 15 packages of a real Alpine 3.4 image's apk database (name, version, origin).
fn alpine_inventory() -> Inventory {
    let text = std::fs::read_to_string(ALPINE_DB).unwrap();
    let packages = text
        .split("\n\n")
        .filter_map(|block| {
            let field = |key: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(str::to_owned)
            };
            Some(InventoryPackage {
                kind: PackageKind::Apk,
                name: field("P:")?,
                version: field("V:")?,
                source_name: field("o:"),
                source_version: None,
                layer_digest: None,
                file_path: None,
                owner: None,
            })
        })
        .take(15)
        .collect::<Vec<_>>();
    assert_eq!(packages.len(), 15);
    Inventory {
        os: Some(os_release("alpine", "3.4.6")),
        packages,
        unreadable: Vec::new(),
    }
}

fn os_release(id: &str, version: &str) -> OsRelease {
    OsRelease {
        id: id.to_owned(),
        version_id: Some(version.to_owned()),
        id_like: vec![],
        pretty_name: None,
    }
}
