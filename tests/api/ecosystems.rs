//! Every package in the image: one image, pushed to a real registry that notifies the service,
//! holds a Debian base, a Go binary, a cargo-auditable Rust binary, a Spring Boot jar, Ruby
//! gemspecs, a Composer `installed.json`, a .NET `deps.json`, Python dist-infos and an npm
//! package, beside a truncated jar and a truncated Go binary. It is scanned on push against real
//! OSV records; each finding and each package names the file it was read from.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crowsnest::domain::Role;
use serde_json::Value;
use zip::CompressionMethod::{Deflated, Stored};

use crate::backend_tests;
use crate::scan::scan;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::{read_crate_fixture, vulnerable_debian, zip_archive};
use crate::support::images::{Compression, Image, Layer, MediaKind, Platform};
use crate::support::registry::client::push_image;
use crate::support::scans::{SUB, findings, notifying_registry, scans, wait_for_scan_end};
use crate::support::wait_for;

backend_tests!(every_ecosystem_in_a_pushed_image_is_found_in_its_file);

const GO_BINARY: &str = "usr/local/bin/hello";
const RUST_BINARY: &str = "usr/local/bin/tiny-auditable";
const TRUNCATED_GO_BINARY: &str = "usr/local/bin/hello-truncated";
const SPRING_BOOT_JAR: &str = "app/app.jar";
const TRUNCATED_JAR: &str = "app/lib/commons-io-truncated.jar";
const DPKG_STATUS: &str = "var/lib/dpkg/status";
const GEMS: &str = "usr/lib/ruby/gems/3.1.0/specifications";
const INTEGRATION_GEMS: &str = "usr/share/rubygems-integration/all/specifications";
const COMPOSER: &str = "var/www/vendor/composer/installed.json";
const DEPS_JSON: &str = "app/MyApp.deps.json";
const SITE_PACKAGES: &str = "opt/venv/lib/python3.11/site-packages";
const JQUERY: &str = "usr/lib/node_modules/jquery/package.json";

/// The records the image's packages are matched against, relative to `../shared/fixtures`.
const RECORDS: [&str; 7] = [
    // DSA-4652-1, DSA-4697-1, DLA-3070-1 and DLA-3321-1 fix gnutls28 past 3.6.7-4+deb10u2.
    "osv/debian-dsa-dla.zip",
    // Go's standard library before 1.20.10.
    "osv/records/go/GO-2023-2102.json",
    // Guava's GHSAs, and RubyGems, NuGet, Packagist and PyPI records the image's gems and
    // manifests are outside of.
    "osv/records/maven/bundle-osv-scalibr-zeppelin-server-vulnerabilities.json",
    // urllib3 before 1.26.18, idna before 3.7.
    "osv/records/pypi/PYSEC-2023-212.yaml",
    "osv/records/pypi/PYSEC-2024-60.yaml",
    // jquery from 2.1.1-0 before 3.0.0.
    "osv/records/ghsa/ghsa-converter-testdata/npm_greater_than.osv.json",
    // openssl: crates.io data, which none of the Rust binary's crates is in.
    "osv/records/crates.io/RUSTSEC-2016-0001.json",
];

/// Half of `bytes`: what an interrupted copy leaves.
fn truncated(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

/// A Spring Boot jar: its own `pom.properties`, and in `BOOT-INF/lib/` Debian's slf4j-api
/// (stored, as Spring Boot stores nested jars) and commons-io (deflated), and a jar holding
/// Guava 31.1-jre's real `pom.properties`.
fn spring_boot_jar() -> Vec<u8> {
    let guava = zip_archive(&[(
        "META-INF/maven/com.google.guava/guava/pom.properties",
        &read_crate_fixture("debian-java/guava-31.1-jre.pom.properties"),
        Deflated,
    )]);
    zip_archive(&[
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.JarLauncher\r\n\r\n",
            Deflated,
        ),
        (
            "META-INF/maven/com.example/demo/pom.properties",
            b"groupId=com.example\nartifactId=demo\nversion=0.0.1-SNAPSHOT\n",
            Deflated,
        ),
        ("BOOT-INF/lib/guava.jar", &guava, Stored),
        (
            "BOOT-INF/lib/slf4j-api.jar",
            &read_crate_fixture("debian-java/slf4j-api.jar"),
            Stored,
        ),
        (
            "BOOT-INF/lib/commons-io.jar",
            &read_crate_fixture("debian-java/commons-io.jar"),
            Deflated,
        ),
    ])
}

/// The vulnerable Debian base, then one layer of binaries, one of Java archives and one of
/// language package metadata.
fn image_of_every_ecosystem() -> Image {
    let hello = read_crate_fixture("go/hello");
    let binaries = Layer::from_files(
        &[
            (GO_BINARY, hello.clone(), 0o755),
            (
                RUST_BINARY,
                read_crate_fixture("rust-auditable/tiny-auditable"),
                0o755,
            ),
            (TRUNCATED_GO_BINARY, truncated(&hello), 0o755),
        ],
        Compression::Gzip,
    );
    let java = Layer::from_files(
        &[
            (SPRING_BOOT_JAR, spring_boot_jar(), 0o644),
            (
                TRUNCATED_JAR,
                truncated(&read_crate_fixture("debian-java/commons-io.jar")),
                0o644,
            ),
        ],
        Compression::Gzip,
    );
    let debian_ruby = "debian-ruby/root";
    let debian_python = "debian-python/opt/venv/lib/python3.11/site-packages";
    let languages = Layer::from_files(
        &[
            (
                format!("{GEMS}/rake-13.0.6.gemspec"),
                read_crate_fixture(&format!("{debian_ruby}/{GEMS}/rake-13.0.6.gemspec")),
                0o644,
            ),
            (
                format!("{INTEGRATION_GEMS}/rack-2.2.22.gemspec"),
                read_crate_fixture(&format!(
                    "{debian_ruby}/{INTEGRATION_GEMS}/rack-2.2.22.gemspec"
                )),
                0o644,
            ),
            (
                COMPOSER.to_owned(),
                read_crate_fixture("syft/php/composer_2/installed.json"),
                0o644,
            ),
            (
                DEPS_JSON.to_owned(),
                read_crate_fixture("syft/dotnet/MyApp.deps.json"),
                0o644,
            ),
            (
                format!("{SITE_PACKAGES}/idna-3.3.dist-info/METADATA"),
                read_crate_fixture(&format!("{debian_python}/idna-3.3.dist-info/METADATA")),
                0o644,
            ),
            (
                format!("{SITE_PACKAGES}/urllib3-1.26.12.dist-info/METADATA"),
                read_crate_fixture(&format!(
                    "{debian_python}/urllib3-1.26.12.dist-info/METADATA"
                )),
                0o644,
            ),
            (
                JQUERY.to_owned(),
                br#"{"name": "jquery", "version": "2.2.4", "main": "dist/jquery.js"}"#.to_vec(),
                0o644,
            ),
        ],
        Compression::Gzip,
    );
    let mut layers = vulnerable_debian().layers;
    layers.extend([binaries, java, languages]);
    Image::new(layers, Platform::linux_amd64(), MediaKind::Oci)
}

async fn import_records(app: &TestApp) {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let files: Vec<(String, PathBuf)> = RECORDS
            .iter()
            .map(|rel| {
                (
                    rel.to_string(),
                    PathBuf::from(format!("../shared/fixtures/{rel}")),
                )
            })
            .collect();
        crowsnest::jobs::import_advisories::import_files(&pool, &files, &|_| {}).unwrap()
    })
    .await
    .unwrap();
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

type Triple = (String, String, String);

fn triples(list: &[(&str, &str, &str)]) -> BTreeSet<Triple> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

async fn every_ecosystem_in_a_pushed_image_is_found_in_its_file(backend: Backend) {
    let app = spawn_app(backend).await;
    import_records(&app).await;
    let registry = notifying_registry(&app, "everything").await;
    let pushed = push_image(
        &registry,
        "team/everything",
        Some("v1"),
        &image_of_every_ecosystem(),
    )
    .await;

    let digest = pushed.manifest_digest.clone();
    let name = wait_for("the push's scan", Duration::from_secs(60), || async {
        scans(&app, &format!("&digest={digest}"))
            .await
            .first()
            .map(|s| text(&s["name"]))
    })
    .await;
    let done = wait_for_scan_end(&app, &name).await;
    let summary = &done["properties"];
    assert_eq!(summary["status"], "Succeeded", "{done}");
    assert_eq!(summary["trigger"], "Push", "{done}");

    // (advisory, package, file) of every finding, from the records above and the fixtures'
    // versions; the truncated files give none.
    let listed = findings(&app).await;
    let got: BTreeSet<Triple> = listed
        .iter()
        .map(|f| {
            let data = &f["properties"]["additionalData"];
            assert_eq!(data["imageDigest"], pushed.manifest_digest.as_str());
            (
                text(&f["properties"]["id"]),
                text(&data["packageName"]),
                text(&data["filePath"]),
            )
        })
        .collect();
    let guava = "app/app.jar!BOOT-INF/lib/guava.jar";
    let idna = format!("{SITE_PACKAGES}/idna-3.3.dist-info/METADATA");
    let urllib3 = format!("{SITE_PACKAGES}/urllib3-1.26.12.dist-info/METADATA");
    assert_eq!(
        got,
        triples(&[
            ("DSA-4652-1", "libgnutls30", DPKG_STATUS),
            ("DSA-4697-1", "libgnutls30", DPKG_STATUS),
            ("DLA-3070-1", "libgnutls30", DPKG_STATUS),
            ("DLA-3321-1", "libgnutls30", DPKG_STATUS),
            ("GO-2023-2102", "stdlib", GO_BINARY),
            ("GHSA-5mg8-w23w-74h3", "com.google.guava:guava", guava),
            ("GHSA-7g45-4rm6-3mm3", "com.google.guava:guava", guava),
            ("PYSEC-2024-60", "idna", &idna),
            ("PYSEC-2023-212", "urllib3", &urllib3),
            ("GHSA-mhpp-875w-9cpv", "jquery", JQUERY),
        ]),
        "{listed:#?}"
    );
    assert_eq!(
        listed.len(),
        got.len(),
        "one finding per advisory and package"
    );
    let ecosystems: BTreeSet<String> = listed
        .iter()
        .map(|f| text(&f["properties"]["additionalData"]["ecosystem"]))
        .collect();
    assert_eq!(
        ecosystems,
        BTreeSet::from(["Debian:10", "Go", "Maven", "PyPI", "npm"].map(String::from))
    );

    // The inventory, as `crowsnest scan` prints it: the one the push's scan stored.
    let reference = format!("{}/team/everything:v1", registry.host());
    let (code, out, stderr) = scan(&app, &[&reference, "--insecure"]);
    assert_eq!(code, 0, "every ecosystem has data: {stderr}");
    let image = &out["images"][0];
    assert_eq!(image["inventoryReused"], true, "{stderr}");
    let packages: BTreeSet<(String, String, String, String)> = image["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                text(&p["kind"]),
                text(&p["name"]),
                text(&p["version"]),
                text(&p["filePath"]),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String, String)> = [
        ("Dpkg", "libgnutls30", "3.6.7-4+deb10u2", DPKG_STATUS),
        ("Dpkg", "base-files", "10.3+deb10u13", DPKG_STATUS),
        ("Go", "stdlib", "1.19.8", GO_BINARY),
        ("Go", "github.com/google/uuid", "1.3.0", GO_BINARY),
        ("Go", "github.com/pkg/errors", "0.9.1", GO_BINARY),
        ("Cargo", "cfg-if", "1.0.5", RUST_BINARY),
        ("Cargo", "hex", "0.4.3", RUST_BINARY),
        ("Cargo", "itoa", "1.0.19", RUST_BINARY),
        (
            "Maven",
            "com.example:demo",
            "0.0.1-SNAPSHOT",
            SPRING_BOOT_JAR,
        ),
        ("Maven", "com.google.guava:guava", "31.1-jre", guava),
        (
            "Maven",
            "org.slf4j:slf4j-api",
            "1.7.32",
            "app/app.jar!BOOT-INF/lib/slf4j-api.jar",
        ),
        (
            "Maven",
            "commons-io:commons-io",
            "2.11.0",
            "app/app.jar!BOOT-INF/lib/commons-io.jar",
        ),
        (
            "RubyGems",
            "rake",
            "13.0.6",
            &format!("{GEMS}/rake-13.0.6.gemspec"),
        ),
        (
            "RubyGems",
            "rack",
            "2.2.22",
            &format!("{INTEGRATION_GEMS}/rack-2.2.22.gemspec"),
        ),
        ("Packagist", "asm89/stack-cors", "1.3.0", COMPOSER),
        ("Packagist", "behat/mink", "v1.8.1", COMPOSER),
        ("NuGet", "Newtonsoft.Json", "13.0.3", DEPS_JSON),
        ("Python", "idna", "3.3", &idna),
        ("Python", "urllib3", "1.26.12", &urllib3),
        ("Npm", "jquery", "2.2.4", JQUERY),
    ]
    .iter()
    .map(|(k, n, v, f)| (k.to_string(), n.to_string(), v.to_string(), f.to_string()))
    .collect();
    // Nothing comes from the truncated jar and Go binary: they are named instead, with a code,
    // by each analyzer that wanted them, and counted once each on the image.
    assert_eq!(packages, want, "{image:#}");
    assert_eq!(summary["summary"]["packageCount"], want.len(), "{done}");
    let unreadable: BTreeSet<(String, String, String)> = image["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (text(&u["path"]), text(&u["analyzer"]), text(&u["code"])))
        .collect();
    assert_eq!(
        unreadable,
        BTreeSet::from(
            [
                (TRUNCATED_GO_BINARY, "gobinary", "Truncated"),
                (TRUNCATED_GO_BINARY, "rustaudit", "Truncated"),
                (TRUNCATED_JAR, "java", "Truncated"),
            ]
            .map(|(p, a, c)| (p.to_owned(), a.to_owned(), c.to_owned()))
        ),
        "{image:#}"
    );
    let token = app.token(SUB, Role::Reader);
    let (status, resource) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/images/{}?{OWN_API}",
                pushed.manifest_digest
            ),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{resource}");
    assert_eq!(resource["properties"]["unreadableFiles"], 2, "{resource}");
    assert_eq!(resource["properties"]["health"]["code"], "Unhealthy");
}
