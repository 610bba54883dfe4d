use crowsnest::jobs::inventories::{load, save};
use crowsnest::scanner::advisories::ecosystem::OsRelease;
use crowsnest::scanner::advisories::matcher::{Inventory, InventoryPackage, PackageKind};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::rows::digest_of;

backend_tests!(inventories_are_reused_only_while_the_analyzers_are_the_same);

async fn inventories_are_reused_only_while_the_analyzers_are_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    let digest = digest_of("manifest");
    let inventory = Inventory {
        os: Some(OsRelease {
            id: "debian".into(),
            version_id: Some("12".into()),
            id_like: vec![],
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        }),
        packages: (0..1500)
            .map(|i| InventoryPackage {
                kind: if i % 3 == 0 {
                    PackageKind::Python
                } else {
                    PackageKind::Dpkg
                },
                name: format!("pkg{i}"),
                version: format!("1.{i}-1"),
                source_name: (i % 2 == 0).then(|| format!("src{i}")),
                source_version: (i % 4 == 0).then(|| format!("1.{i}")),
                layer_digest: Some(digest_of(&format!("layer{}", i % 3))),
                file_path: None,
                owner: None,
            })
            .collect(),
        unreadable: Vec::new(),
    };
    let stored = inventory.clone();
    let d = digest.clone();
    app.db(move |c| save(c, &d, "apk@1,dpkg@1", 3, &stored))
        .await;

    let d = digest.clone();
    let loaded = app.db(move |c| load(c, &d, "apk@1,dpkg@1")).await;
    assert_eq!(loaded.as_ref(), Some(&inventory));
    let d = digest.clone();
    assert_eq!(
        app.db(move |c| load(c, &d, "apk@1,dpkg@2")).await,
        None,
        "an upgraded analyzer rebuilds"
    );
    assert_eq!(
        app.db(|c| load(c, "sha256:none", "apk@1,dpkg@1")).await,
        None
    );

    // Saving again replaces, it does not append.
    let mut smaller = inventory.clone();
    smaller.packages.truncate(2);
    smaller.os = None;
    let (d, s) = (digest.clone(), smaller.clone());
    app.db(move |c| save(c, &d, "apk@1,dpkg@2", 3, &s)).await;
    let d = digest.clone();
    assert_eq!(
        app.db(move |c| load(c, &d, "apk@1,dpkg@2")).await,
        Some(smaller)
    );
}
