//! `crowsnest scan` against a real registry: images pushed by hand, advisories from the real
//! Debian and Alpine bundles, on both backends.

use std::process::Command;

use serde_json::Value;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::{
    WHITEOUT_PURGED_PACKAGE, fixture_image_whiteout, push_fixture_multiarch, vulnerable_debian,
};
use crate::support::images::{Image, MediaKind, Platform};
use crate::support::registry::client::{IndexKind, push_image};
use crate::support::registry::{RegistryAuth, TestRegistry};

backend_tests!(
    scans_find_the_advisories_and_reuse_inventories,
    scans_resolve_indexes_auth_and_whiteouts,
    local_layouts_and_archives_scan_like_registry_images,
    rpm_images_scan_through_a_token_auth_registry,
);

/// `crowsnest scan … --format json` on the app's database: (exit code, output, stderr).
pub(crate) fn scan(app: &TestApp, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .arg("scan")
        .args(args)
        .args(["--format", "json"])
        .env("DATABASE_URL", app.database_url())
        // Missing data is reported, never fetched from the internet.
        .arg("--offline")
        .env_remove("CROWSNEST_REGISTRY_USERNAME")
        .env_remove("CROWSNEST_REGISTRY_PASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8(out.stderr).unwrap(),
    )
}

async fn import_bundles(app: &TestApp) {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let files = [
            "../shared/fixtures/osv/debian-dsa-dla.zip",
            "../shared/fixtures/osv/alpine-secdb.zip",
        ]
        .map(|f| (f.to_owned(), std::path::PathBuf::from(f)));
        crowsnest::jobs::import_advisories::import_files(&pool, &files, &|_| {}).unwrap()
    })
    .await
    .unwrap();
}

async fn scans_find_the_advisories_and_reuse_inventories(backend: Backend) {
    let app = spawn_app(backend).await;
    import_bundles(&app).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    push_image(&registry, "team/app", Some("1.0"), &vulnerable_debian()).await;
    let reference = format!("{}/team/app:1.0", registry.host());

    let (code, out, stderr) = scan(&app, &[&reference, "--insecure", "--fail-on", "High"]);
    let image = &out["images"][0];
    assert_eq!(image["os"]["id"], "debian", "{stderr}");
    assert_eq!(image["packages"].as_array().unwrap().len(), 2);
    assert_eq!(image["inventoryReused"], false);
    let findings = image["findings"].as_array().unwrap();
    let dsa = findings
        .iter()
        .find(|f| f["advisoryId"] == "DSA-4652-1")
        .unwrap_or_else(|| panic!("{image:#}"));
    assert_eq!(dsa["packageName"], "libgnutls30");
    assert_eq!(dsa["fixedVersion"], "3.6.7-4+deb10u3");
    assert!(
        findings.iter().all(|f| f["packageName"] == "libgnutls30"),
        "base-files is not affected"
    );
    // The bundle's Debian records carry no severity: Medium by default, below --fail-on High.
    assert_eq!(code, 0, "{stderr}");

    // Again: the inventory is reused (no layer pulled), the findings are the same; --fail-on Low fails.
    let (code, again, _) = scan(&app, &[&reference, "--insecure", "--fail-on", "Low"]);
    assert_eq!(again["images"][0]["inventoryReused"], true);
    assert_eq!(again["images"][0]["findings"], image["findings"]);
    assert_eq!(code, 1);

    // Errors: exit 2 with the reason.
    let (code, _, stderr) = scan(
        &app,
        &[&format!("{}/team/app:nope", registry.host()), "--insecure"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("ManifestNotFound"), "{stderr}");
    let (code, _, stderr) = scan(&app, &[&reference]);
    assert_eq!(code, 2, "https is required unless --insecure");
    assert!(stderr.contains("insecure"), "{stderr}");
}

async fn scans_resolve_indexes_auth_and_whiteouts(backend: Backend) {
    let app = spawn_app(backend).await;
    // Debian data for the whiteout image; none of the fixtures covers Alpine 3.18.
    import_bundles(&app).await;
    let registry = TestRegistry::start(RegistryAuth::basic_default());
    let (user, password) = registry.credentials().unwrap();
    push_fixture_multiarch(&registry, "multi/alpine", "3.18", IndexKind::OciIndex).await;
    push_image(
        &registry,
        "multi/whiteout",
        Some("v1"),
        &fixture_image_whiteout(MediaKind::Oci),
    )
    .await;

    let (code, _, stderr) = scan(
        &app,
        &[
            &format!("{}/multi/alpine:3.18", registry.host()),
            "--insecure",
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("RegistryUnauthorized"), "{stderr}");

    let (code, out, stderr) = scan(
        &app,
        &[
            &format!("{}/multi/alpine:3.18", registry.host()),
            "--insecure",
            "--username",
            user,
            "--password",
            password,
        ],
    );
    // Both platforms are read; without Alpine 3.18 advisories their verdict is withheld.
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no advisory data for Alpine:v3.18"),
        "{stderr}"
    );
    assert!(out["indexDigest"].as_str().unwrap().starts_with("sha256:"));
    let mut platforms: Vec<&str> = out["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"].as_str().unwrap())
        .collect();
    platforms.sort();
    assert_eq!(platforms, vec!["linux/amd64", "linux/arm64/v8"]);
    for image in out["images"].as_array().unwrap() {
        assert_eq!(image["os"]["id"], "alpine");
        assert_eq!(image["packages"].as_array().unwrap().len(), 15);
    }
    assert!(!stderr.contains(password), "no password in the output");

    let (code, out, stderr) = scan(
        &app,
        &[
            &format!("{}/multi/whiteout:v1", registry.host()),
            "--insecure",
            "--username",
            user,
            "--password",
            password,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let names: Vec<&str> = out["images"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&WHITEOUT_PURGED_PACKAGE), "{names:?}");
    assert_eq!(names.len(), 2);
}

/// An OCI image layout directory holding `image` under the tag `v1`.
pub(crate) fn write_oci_layout(dir: &std::path::Path, image: &Image) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |digest: &str, bytes: &[u8]| {
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap()
    };
    for layer in &image.layers {
        put(&layer.digest, &layer.blob);
    }
    put(&image.config_digest(), &image.config_bytes());
    let manifest = image.manifest_bytes();
    put(&image.manifest_digest(), &manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": image.manifest_media_type(),
            "digest": image.manifest_digest(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

pub(crate) fn tar_dir(dir: &std::path::Path, out: &std::path::Path) {
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.finish().unwrap();
}

async fn local_layouts_and_archives_scan_like_registry_images(backend: Backend) {
    let app = spawn_app(backend).await;
    let work = tempfile::tempdir().unwrap();
    let image =
        crate::support::fixtures::fixture_image_alpine(MediaKind::Oci, Platform::linux_amd64());

    let layout = work.path().join("layout");
    write_oci_layout(&layout, &image);
    let archive = work.path().join("layout.tar");
    tar_dir(&layout, &archive);
    // `docker save`: manifest.json naming the config and uncompressed layer tars by path.
    let saved = work.path().join("saved");
    std::fs::create_dir_all(saved.join("layer0")).unwrap();
    std::fs::write(saved.join("config.json"), image.config_bytes()).unwrap();
    std::fs::write(saved.join("layer0/layer.tar"), &image.layers[0].tar).unwrap();
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["team/alpine:v1"], "Layers": ["layer0/layer.tar"]}]);
    std::fs::write(
        saved.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let docker_archive = work.path().join("saved.tar");
    tar_dir(&saved, &docker_archive);

    for reference in [
        format!("oci:{}:v1", layout.display()),
        format!("oci:{}", layout.display()),
        format!("oci-archive:{}:v1", archive.display()),
        format!("docker-archive:{}:v1", docker_archive.display()),
    ] {
        let (code, out, stderr) = scan(&app, &[&reference]);
        // The fixtures hold no Alpine 3.18 advisories: the image is read, its verdict withheld.
        assert_eq!(code, 2, "{reference}: {stderr}");
        assert!(
            stderr.contains("no advisory data for Alpine:v3.18"),
            "{reference}: {stderr}"
        );
        let image = &out["images"][0];
        assert_eq!(image["coverage"][0]["advisories"], "none", "{reference}");
        assert_eq!(image["os"]["id"], "alpine", "{reference}");
        assert_eq!(
            image["packages"].as_array().unwrap().len(),
            15,
            "{reference}"
        );
        assert_eq!(image["platform"], "linux/amd64");
    }
    let (code, _, stderr) = scan(&app, &[&format!("oci:{}:v2", layout.display())]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no image tagged"), "{stderr}");
    let (code, _, stderr) = scan(
        &app,
        &[&format!(
            "oci-archive:{}",
            work.path().join("missing.tar").display()
        )],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.tar"), "{stderr}");
}

async fn rpm_images_scan_through_a_token_auth_registry(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = TestRegistry::start(RegistryAuth::token_default());
    let (user, password) = registry.credentials().unwrap();
    push_image(
        &registry,
        "os/amazonlinux",
        Some("2023"),
        &crate::support::fixtures::fixture_image_rpm(MediaKind::DockerV2),
    )
    .await;
    let reference = format!("{}/os/amazonlinux:2023", registry.host());

    let (code, _, stderr) = scan(&app, &[&reference, "--insecure"]);
    assert_eq!(code, 2, "an anonymous token grants nothing");
    assert!(stderr.contains("RegistryUnauthorized"), "{stderr}");
    let (code, out, stderr) = scan(
        &app,
        &[
            &reference,
            "--insecure",
            "--username",
            user,
            "--password",
            password,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let image = &out["images"][0];
    assert_eq!(
        image["packages"].as_array().unwrap().len(),
        103,
        "amazonlinux 2023's rpmdb.sqlite"
    );
    assert!(
        image["packages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "Rpm")
    );
    // Amazon Linux has no OSV ecosystem here: reported, never silently healthy.
    assert!(
        image["unsupportedOs"].is_string(),
        "{:#}",
        image["unsupportedOs"]
    );
}
