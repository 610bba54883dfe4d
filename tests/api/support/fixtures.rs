//! Fixture images built from the package databases in `../shared/fixtures/pkgdb/`: Debian,
//! Alpine, RPM, a three-layer whiteout image and a multi-arch index.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::support::images::{Compression, Image, Layer, MediaKind, Platform, TarEntry};
use crate::support::registry::TestRegistry;
use crate::support::registry::client::{IndexKind, PushedImage, PushedIndex};

const AMAZONLINUX_2023_OS_RELEASE: &str =
    include_str!("../../fixtures/registry/amazonlinux-2023.os-release");

/// `<crate root>/../shared/fixtures`.
pub fn shared_fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        dir.is_dir(),
        "shared fixtures not found at {} (expected ../shared/fixtures next to the crate)",
        dir.display()
    );
    dir
}

/// Read `../shared/fixtures/<rel>`.
pub fn read_shared_fixture(rel: &str) -> Vec<u8> {
    let p = shared_fixtures_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

/// Read `tests/fixtures/<rel>`, the fixtures committed with the crate.
pub fn read_crate_fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

/// A zip archive (a jar, a war) of `(name, content, compression)` entries, in that order.
pub fn zip_archive(entries: &[(&str, &[u8], zip::CompressionMethod)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes, method) in entries {
        let options = zip::write::SimpleFileOptions::default().compression_method(*method);
        zip.start_file(*name, options).expect("zip entry");
        zip.write_all(bytes).expect("zip write");
    }
    zip.finish().expect("zip finish").into_inner()
}

/// Fixture sources (relative to `../shared/fixtures`).
pub mod fixture_paths {
    pub const DEBIAN_OS_RELEASE: &str = "pkgdb/debian/os-release/debian-10/etc/os-release";
    /// 3 Debian 10 packages: postgresql-client, postgresql-client-11, postgresql-client-common.
    pub const DEBIAN_DPKG_STATUS: &str =
        "pkgdb/debian/claircore-postgresql-deb10/var/lib/dpkg/status";
    pub const ALPINE_OS_RELEASE: &str = "pkgdb/alpine/os-release/alpine-3.18/etc/os-release";
    /// 15 packages of a real alpine:3.18 base (A:x86_64).
    pub const ALPINE_APK_INSTALLED: &str = "pkgdb/alpine/scalibr-alpine-3.18/lib/apk/db/installed";
    /// rpmdb.sqlite of amazonlinux:2023 (system-release 2023.1.20230825).
    pub const RPM_AL2023_RPMDB: &str = "pkgdb/rpm/amazonlinux2023/var/lib/rpm/rpmdb.sqlite";
    pub const RPM_AL2023_EXPECTED_CSV: &str = "pkgdb/rpm/amazonlinux2023/expected-packages.csv";
}

/// Fixture layers are deterministic: build each once per test binary (gzip + sha256 of the
/// 3 MB rpmdb is the slowest part of the harness in an unoptimised build).
fn cached_layers(key: &str, build: impl FnOnce() -> Vec<Layer>) -> Vec<Layer> {
    type Cell = Arc<std::sync::OnceLock<Vec<Layer>>>;
    static CACHE: std::sync::LazyLock<Mutex<HashMap<String, Cell>>> =
        std::sync::LazyLock::new(Mutex::default);
    let cell = CACHE
        .lock()
        .expect("lock")
        .entry(key.to_string())
        .or_default()
        .clone();
    // Parallel tests asking for the same fixture wait for one build instead of racing.
    cell.get_or_init(build).clone()
}

/// Debian 10 rootfs: `etc/os-release` + `var/lib/dpkg/status` (3 packages).
pub fn fixture_rootfs_debian() -> Vec<TarEntry> {
    vec![
        TarEntry::file(
            "etc/os-release",
            read_shared_fixture(fixture_paths::DEBIAN_OS_RELEASE),
            0o644,
        ),
        TarEntry::file(
            "var/lib/dpkg/status",
            read_shared_fixture(fixture_paths::DEBIAN_DPKG_STATUS),
            0o644,
        ),
    ]
}

/// Alpine 3.18 rootfs for `arch` (`x86_64` or `aarch64`): `etc/os-release` +
/// `lib/apk/db/installed`. For another arch, `A:x86_64` lines and `musl-x86_64` (the
/// `so:libc.musl-<arch>.so.1` provides/depends, `ld-musl-<arch>.so.1`) are rewritten, so the
/// two platforms have different contents (`usr/share/apk/keys/x86_64` stays, as in real images).
pub fn fixture_rootfs_alpine(arch: &str) -> Vec<TarEntry> {
    let db = String::from_utf8(read_shared_fixture(fixture_paths::ALPINE_APK_INSTALLED))
        .expect("apk db is UTF-8");
    let db = if arch == "x86_64" {
        db
    } else {
        db.lines()
            .map(|l| {
                if l == "A:x86_64" {
                    format!("A:{arch}")
                } else {
                    l.replace("musl-x86_64", &format!("musl-{arch}"))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    vec![
        TarEntry::file(
            "etc/os-release",
            read_shared_fixture(fixture_paths::ALPINE_OS_RELEASE),
            0o644,
        ),
        TarEntry::file("lib/apk/db/installed", db, 0o644),
    ]
}

/// Amazon Linux 2023 rootfs: `etc/os-release` (committed, see tests/fixtures/registry/README.md)
/// + `var/lib/rpm/rpmdb.sqlite` (3.1 MB, SQLite rpmdb).
pub fn fixture_rootfs_rpm() -> Vec<TarEntry> {
    vec![
        TarEntry::file("etc/os-release", AMAZONLINUX_2023_OS_RELEASE, 0o644),
        TarEntry::file(
            "var/lib/rpm/rpmdb.sqlite",
            read_shared_fixture(fixture_paths::RPM_AL2023_RPMDB),
            0o644,
        ),
    ]
}

/// Single-layer Debian image (linux/amd64, gzip).
pub fn fixture_image_debian(kind: MediaKind) -> Image {
    let layers = cached_layers("debian", || {
        vec![
            Layer::from_entries(&fixture_rootfs_debian(), Compression::Gzip)
                .with_created_by("crowsnest fixture: debian 10 os-release + dpkg status"),
        ]
    });
    Image::new(layers, Platform::linux_amd64(), kind)
}

/// Single-layer Alpine image for a platform (`amd64` → x86_64 db, `arm64` → aarch64 db).
pub fn fixture_image_alpine(kind: MediaKind, platform: Platform) -> Image {
    let apk_arch = match platform.architecture.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "armv7",
        "386" => "x86",
        other => panic!("no Alpine fixture arch for {other}"),
    };
    let layers = cached_layers(&format!("alpine-{apk_arch}"), || {
        vec![
            Layer::from_entries(&fixture_rootfs_alpine(apk_arch), Compression::Gzip)
                .with_created_by(&format!(
                    "crowsnest fixture: alpine 3.18 apk db ({apk_arch})"
                )),
        ]
    });
    Image::new(layers, platform, kind)
}

/// Single-layer Amazon Linux 2023 image with an SQLite rpmdb (linux/amd64, gzip).
pub fn fixture_image_rpm(kind: MediaKind) -> Image {
    let layers = cached_layers("rpm", || {
        vec![
            Layer::from_entries(&fixture_rootfs_rpm(), Compression::Gzip)
                .with_created_by("crowsnest fixture: amazonlinux 2023 os-release + rpmdb.sqlite"),
        ]
    });
    Image::new(layers, Platform::linux_amd64(), kind)
}

/// Debian 10 with one vulnerable library (libgnutls30 from gnutls28, fixed by DSA-4652-1).
pub fn vulnerable_debian() -> Image {
    debian_with_gnutls(Some("3.6.7-4+deb10u2"), Vec::new())
}

/// Debian 10 with base-files and, when `gnutls` is a version, libgnutls30 (source gnutls28) at
/// that version; `more` files go into its layer (a marker file makes another digest).
pub fn debian_with_gnutls(gnutls: Option<&str>, more: Vec<TarEntry>) -> Image {
    let gnutls: Vec<(&str, &str, &str)> = gnutls
        .map(|version| ("libgnutls30", "gnutls28", version))
        .into_iter()
        .collect();
    debian_with_packages(&gnutls, more)
}

/// Debian 10 with `packages` (binary package, source package, version) and base-files in its
/// dpkg status; `more` files go into its layer.
pub fn debian_with_packages(packages: &[(&str, &str, &str)], more: Vec<TarEntry>) -> Image {
    let mut status = String::new();
    for (package, source, version) in packages {
        status.push_str(&format!(
            "Package: {package}\nStatus: install ok installed\nArchitecture: amd64\nSource: {source}\nVersion: {version}\n\n"
        ));
    }
    status.push_str(
        "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 10.3+deb10u13\n",
    );
    let os_release = read_shared_fixture(fixture_paths::DEBIAN_OS_RELEASE);
    let mut entries = vec![
        TarEntry::file("etc/os-release", os_release, 0o644),
        TarEntry::file("var/lib/dpkg/status", status.into_bytes(), 0o644),
    ];
    entries.extend(more);
    let layer = Layer::from_entries(&entries, Compression::Gzip);
    Image::new(vec![layer], Platform::linux_amd64(), MediaKind::DockerV2)
}

/// Split a dpkg status file into stanzas (blank-line separated).
pub fn dpkg_stanzas(status: &str) -> Vec<String> {
    status
        .split("\n\n")
        .map(|s| s.trim_matches('\n').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The package removed by layer 2 of [`fixture_image_whiteout`].
pub const WHITEOUT_PURGED_PACKAGE: &str = "postgresql-client";

/// Three-layer Debian image with a file whiteout and an opaque directory whiteout:
/// * L1: `usr/lib/os-release` + symlink `etc/os-release -> ../usr/lib/os-release`,
///   `var/lib/dpkg/status` (3 packages), `usr/local/bin/leftover.sh`, `opt/app/{a,b}.txt`
/// * L2: `var/lib/dpkg/status` without `postgresql-client` (simulates `apt purge`),
///   `usr/local/bin/.wh.leftover.sh`
/// * L3: `opt/app/.wh..wh..opq` + `opt/app/c.txt`
///
/// Final filesystem: etc/os-release (symlink), usr/lib/os-release, var/lib/dpkg/status
/// (postgresql-client-11, postgresql-client-common), opt/app/c.txt (+ directories).
pub fn fixture_image_whiteout(kind: MediaKind) -> Image {
    Image::new(
        cached_layers("whiteout", whiteout_layers),
        Platform::linux_amd64(),
        kind,
    )
}

fn whiteout_layers() -> Vec<Layer> {
    let status = String::from_utf8(read_shared_fixture(fixture_paths::DEBIAN_DPKG_STATUS))
        .expect("status UTF-8");
    let kept: Vec<String> = dpkg_stanzas(&status)
        .into_iter()
        .filter(|s| {
            !s.lines()
                .any(|l| l == format!("Package: {WHITEOUT_PURGED_PACKAGE}"))
        })
        .collect();
    assert_eq!(
        kept.len(),
        2,
        "whiteout fixture expects 3 packages in {}",
        fixture_paths::DEBIAN_DPKG_STATUS
    );
    let status_l2 = format!("{}\n\n", kept.join("\n\n"));
    let l1 = Layer::from_entries(
        &[
            TarEntry::file(
                "usr/lib/os-release",
                read_shared_fixture(fixture_paths::DEBIAN_OS_RELEASE),
                0o644,
            ),
            TarEntry::symlink("etc/os-release", "../usr/lib/os-release"),
            TarEntry::file("var/lib/dpkg/status", status.into_bytes(), 0o644),
            TarEntry::file(
                "usr/local/bin/leftover.sh",
                "#!/bin/sh\necho leftover\n",
                0o755,
            ),
            TarEntry::file("opt/app/a.txt", "a\n", 0o644),
            TarEntry::file("opt/app/b.txt", "b\n", 0o644),
        ],
        Compression::Gzip,
    )
    .with_created_by("layer1: base files + dpkg status with postgresql-client");
    let l2 = Layer::from_entries(
        &[
            TarEntry::whiteout("usr/local/bin/leftover.sh"),
            TarEntry::file("var/lib/dpkg/status", status_l2.into_bytes(), 0o644),
        ],
        Compression::Gzip,
    )
    .with_created_by("layer2: apt purge postgresql-client; rm /usr/local/bin/leftover.sh");
    let l3 = Layer::from_entries(
        &[
            TarEntry::opaque("opt/app"),
            TarEntry::file("opt/app/c.txt", "c\n", 0o644),
        ],
        Compression::Gzip,
    )
    .with_created_by("layer3: opaque whiteout opt/app");
    vec![l1, l2, l3]
}

/// The two platform images of the multi-arch fixture (Alpine amd64 + arm64/v8).
pub fn fixture_multiarch_images(kind: MediaKind) -> Vec<(Image, Platform)> {
    [Platform::linux_amd64(), Platform::linux_arm64()]
        .into_iter()
        .map(|p| (fixture_image_alpine(kind, p.clone()), p))
        .collect()
}

/// Push the multi-arch fixture: both platform manifests by digest, then the index/list by
/// `tag` (like `skopeo copy --all`). OCI index ↔ OCI children, manifest list ↔ Docker children.
pub async fn push_fixture_multiarch(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    kind: IndexKind,
) -> (PushedIndex, Vec<PushedImage>) {
    let client = registry.client();
    let media = match kind {
        IndexKind::OciIndex => MediaKind::Oci,
        IndexKind::DockerManifestList => MediaKind::DockerV2,
    };
    let mut children = Vec::new();
    for (img, plat) in fixture_multiarch_images(media) {
        children.push((client.push_image(repo, None, &img).await, plat));
    }
    let index = client.push_index(repo, tag, &children, kind).await;
    (index, children.into_iter().map(|(p, _)| p).collect())
}
