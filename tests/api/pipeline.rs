//! Images built from the real package databases, read layer by layer into inventories (the same
//! blobs the registry tests push).

use std::sync::Arc;

use crowsnest::scanner::advisories::matcher::{Inventory, PackageKind};
use crowsnest::scanner::analyzers::{self, AnalysisReport};
use crowsnest::scanner::layers::Limits;
use crowsnest::scanner::pipeline::{LayerReader, LayerRef, PipelineError, inventory};

use crate::support::fixtures::{
    WHITEOUT_PURGED_PACKAGE, fixture_image_alpine, fixture_image_debian, fixture_image_rpm,
    fixture_image_whiteout,
};
use crate::support::images::{
    Compression, Image, Layer, MediaKind, Platform, TarEntry, sha256_digest,
};

async fn inventory_of(image: &Image) -> Result<Inventory, PipelineError> {
    report_of(image).await.map(|report| report.inventory)
}

async fn report_of(image: &Image) -> Result<AnalysisReport, PipelineError> {
    let refs: Vec<LayerRef> = image
        .layers
        .iter()
        .map(|l| LayerRef {
            digest: l.digest.clone(),
            media_type: l.media_type(image.kind).to_owned(),
        })
        .collect();
    let blobs: Vec<(String, Vec<u8>)> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.blob.clone()))
        .collect();
    inventory(
        &refs,
        Arc::new(analyzers::defaults()),
        &Limits::default(),
        |layer| {
            let blob = blobs
                .iter()
                .find(|(d, _)| *d == layer.digest)
                .map(|(_, b)| b.clone());
            async move {
                let blob = blob.expect("the layer is in the image");
                Ok(Box::new(std::io::Cursor::new(blob)) as LayerReader)
            }
        },
    )
    .await
}

fn names(inv: &Inventory) -> Vec<&str> {
    inv.packages.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test]
async fn debian_alpine_and_rpm_images_give_their_packages() {
    for kind in [MediaKind::Oci, MediaKind::DockerV2] {
        let debian = inventory_of(&fixture_image_debian(kind)).await.unwrap();
        assert_eq!(debian.os.as_ref().unwrap().id, "debian");
        assert_eq!(
            debian.os.as_ref().unwrap().version_id.as_deref(),
            Some("10")
        );
        assert_eq!(debian.packages.len(), 3, "{:?}", names(&debian));
        assert!(debian.packages.iter().all(|p| p.kind == PackageKind::Dpkg));

        let alpine = inventory_of(&fixture_image_alpine(kind, Platform::linux_amd64()))
            .await
            .unwrap();
        assert_eq!(alpine.os.as_ref().unwrap().id, "alpine");
        assert_eq!(alpine.packages.len(), 15);
        assert!(
            alpine.packages.iter().any(|p| p.source_name.is_some()),
            "origins are kept"
        );

        let rpm = inventory_of(&fixture_image_rpm(kind)).await.unwrap();
        assert_eq!(rpm.packages.len(), 103, "amazonlinux 2023's rpmdb.sqlite");
        assert!(rpm.packages.iter().all(|p| p.kind == PackageKind::Rpm));
    }
}

#[tokio::test]
async fn whiteouts_across_three_layers_are_applied() {
    let image = fixture_image_whiteout(MediaKind::Oci);
    assert_eq!(image.layers.len(), 3);
    let inv = inventory_of(&image).await.unwrap();
    assert_eq!(
        inv.os.as_ref().unwrap().id,
        "debian",
        "etc/os-release is a symlink into usr/lib"
    );
    assert!(
        !names(&inv).contains(&WHITEOUT_PURGED_PACKAGE),
        "{:?}",
        names(&inv)
    );
    assert_eq!(inv.packages.len(), 2);
    // Each package names the layer its database came from: the second.
    assert!(
        inv.packages
            .iter()
            .all(|p| p.layer_digest.as_deref() == Some(image.layers[1].digest.as_str()))
    );
}

#[tokio::test]
async fn hostile_layers_fail_with_a_reason() {
    // tar::Builder refuses to write `..`, so the header is written by hand.
    let data = b"root:x:0:0::/root:/bin/sh\n";
    let mut header = tar::Header::new_gnu();
    let name = b"../../etc/passwd";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &data[..]).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let mut evil = Layer::from_entries(
        &[TarEntry::file("placeholder", b"x".to_vec(), 0o644)],
        Compression::Gzip,
    );
    evil.blob = gz.finish().unwrap();
    evil.digest = sha256_digest(&evil.blob);
    let image = Image::new(vec![evil], Platform::linux_amd64(), MediaKind::Oci);
    let err = inventory_of(&image).await.unwrap_err();
    assert_eq!(err.code(), "PathTraversal", "{err}");
    assert!(err.to_string().contains("etc/passwd"), "{err}");

    // The bytes do not match the digest the manifest names.
    let mut image = fixture_image_debian(MediaKind::Oci);
    let last = image.layers[0].blob.len() - 20;
    image.layers[0].blob[last] ^= 0xff;
    let err = inventory_of(&image).await.unwrap_err();
    assert_eq!(err.code(), "DigestMismatch", "{err}");
}

/// Executables are found by their content wherever they are; the Go binary (past 1 MiB, so
/// spooled) and the cargo-auditable binary give their packages, a truncated copy is reported.
#[tokio::test]
async fn go_and_rust_binaries_anywhere_give_their_packages() {
    let fixture = |rel: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let hello = fixture("go/hello");
    assert!(hello.len() > 1 << 20);
    let layer = Layer::from_files(
        &[
            ("ko-app/hello", hello.clone(), 0o755),
            ("opt/tiny", fixture("rust-auditable/tiny-auditable"), 0o755),
            ("usr/bin/broken", hello[..hello.len() / 2].to_vec(), 0o755),
        ],
        Compression::Gzip,
    );
    let image = Image::new(vec![layer], Platform::linux_amd64(), MediaKind::Oci);
    let report = report_of(&image).await.unwrap();
    let found: Vec<(PackageKind, &str, &str, Option<&str>)> = report
        .inventory
        .packages
        .iter()
        .map(|p| {
            (
                p.kind,
                p.name.as_str(),
                p.version.as_str(),
                p.file_path.as_deref(),
            )
        })
        .collect();
    let go = |name, version| (PackageKind::Go, name, version, Some("ko-app/hello"));
    let rust = |name, version| (PackageKind::Cargo, name, version, Some("opt/tiny"));
    assert_eq!(
        found,
        [
            go("stdlib", "1.19.8"),
            go("github.com/google/uuid", "1.3.0"),
            go("github.com/pkg/errors", "0.9.1"),
            rust("cfg-if", "1.0.5"),
            rust("hex", "0.4.3"),
            rust("itoa", "1.0.19"),
        ]
    );
    let unreadable: Vec<(&str, &str, &str)> = report
        .inventory
        .unreadable
        .iter()
        .map(|u| (u.analyzer.as_str(), u.path.as_str(), u.code.as_str()))
        .collect();
    assert_eq!(
        unreadable,
        [
            ("gobinary", "usr/bin/broken", "Truncated"),
            ("rustaudit", "usr/bin/broken", "Truncated"),
        ]
    );
}
