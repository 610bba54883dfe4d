//! Real Debian jars (tests/fixtures/debian-java, expected packages written down from their
//! `pom.properties` in EXPECTED.txt), archives assembled from them at run time, and hostile
//! archives.

use std::collections::BTreeSet;
use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::Arc;

use zip::CompressionMethod::{self, Deflated, Stored};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::*;
use crate::scanner::advisories::matcher::{
    Candidate, Inventory, PackageKind, match_inventory, match_keys,
};
use crate::scanner::advisories::osv::parse_records;
use crate::scanner::analyzers::testutil::{self, LAYER};
use crate::scanner::files::Content;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/debian-java")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(package, version)` of every `pom.properties` in fixture `jar`, from EXPECTED.txt.
fn expected_in(jar: &str) -> Vec<(String, String)> {
    let text = String::from_utf8(fixture("EXPECTED.txt")).unwrap();
    let found: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f[0] == jar)
        .map(|f| (f[1].to_owned(), f[2].to_owned()))
        .collect();
    assert!(!found.is_empty(), "{jar} is not in EXPECTED.txt");
    found
}

/// What `expected_in(jar)` gives for a copy of that jar at `path`.
fn expected_at(jar: &str, path: &str) -> Vec<(String, String, String)> {
    expected_in(jar)
        .into_iter()
        .map(|(name, version)| (name, version, path.to_owned()))
        .collect()
}

fn zip(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes, method) in entries {
        let options = SimpleFileOptions::default().compression_method(*method);
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn pom(group: &str, artifact: &str, version: &str) -> Vec<u8> {
    format!("#Created by Apache Maven 3.9.6\ngroupId={group}\nartifactId={artifact}\nversion={version}\n")
        .into_bytes()
}

fn files(entries: &[(&str, Vec<u8>)]) -> FileSet {
    let mut out = FileSet::new();
    for (path, bytes) in entries {
        out.insert(*path, CollectedFile::new(bytes.clone(), LAYER));
    }
    out
}

fn run(files: &FileSet) -> Analysis {
    JavaAnalyzer.analyze(files).unwrap()
}

fn run_with(limits: Limits, path: &str, bytes: Vec<u8>) -> Analysis {
    let mut analysis = Analysis::default();
    let file = CollectedFile::new(bytes, LAYER);
    read_image_file(path, &file, limits, &mut analysis).unwrap();
    analysis
}

/// `(name, version, file_path)` of every package, sorted.
fn found(a: &Analysis) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = a
        .packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.file_path.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<(String, String, String)>) -> Vec<(String, String, String)> {
    v.sort();
    v
}

/// `(path, code)` of every unreadable file.
fn unreadable(a: &Analysis) -> Vec<(&str, &str)> {
    a.unreadable
        .iter()
        .map(|u| (u.path.as_str(), u.code))
        .collect()
}

fn warned_paths(a: &Analysis) -> BTreeSet<&str> {
    a.warnings.iter().map(|w| w.path.as_str()).collect()
}

/// Rewrites the uncompressed size that entry `name`'s local and central headers declare.
fn declare_size(zip: &mut [u8], name: &str, size: u32) {
    let mut patched = 0;
    for at in 0..zip.len().saturating_sub(46) {
        let (size_at, name_len_at, name_at) = match &zip[at..at + 4] {
            b"PK\x03\x04" => (22, 26, 30),
            b"PK\x01\x02" => (24, 28, 46),
            _ => continue,
        };
        let len = u16::from_le_bytes([zip[at + name_len_at], zip[at + name_len_at + 1]]) as usize;
        if zip.get(at + name_at..at + name_at + len) == Some(name.as_bytes()) {
            zip[at + size_at..at + size_at + 4].copy_from_slice(&size.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "{name}: local and central header");
}

#[test]
fn required_truth_table() {
    for (path, want) in [
        ("usr/share/java/slf4j-api.jar", true),
        ("app.jar", true),
        ("opt/tomcat/webapps/ROOT.war", true),
        ("opt/wildfly/standalone/deployments/shop.ear", true),
        ("var/jenkins_home/plugins/git.jpi", true),
        ("var/jenkins_home/plugins/git.hpi", true),
        ("opt/app/LIB.JAR", true),
        ("opt/app/lib.jar.sha1", false),
        ("opt/app/jar", false),
        ("opt/app/.jar", false),
        ("usr/share/java/", false),
        ("opt/app/app.zip", false),
        ("opt/app/app.jarx", false),
    ] {
        assert_eq!(JavaAnalyzer.required(path), want, "{path}");
    }
}

#[test]
fn real_debian_jars() {
    let jars = [
        "slf4j-api.jar",
        "commons-io.jar",
        "maven3-slf4j-provider.jar",
    ];
    let mut set = FileSet::new();
    for jar in jars {
        let file = CollectedFile::new(fixture(jar), LAYER);
        set.insert(format!("usr/share/java/{jar}"), file);
    }
    let a = run(&set);
    let want: Vec<_> = jars
        .iter()
        .flat_map(|j| expected_at(j, &format!("usr/share/java/{j}")))
        .collect();
    assert_eq!(found(&a), sorted(want));
    // The shaded jar reports both the libraries it holds.
    assert_eq!(expected_in("maven3-slf4j-provider.jar").len(), 2);
    assert_eq!(a.warnings, []);
    assert_eq!(a.unreadable, []);
    for p in &a.packages {
        assert_eq!(p.kind, PackageKind::Maven);
        assert_eq!(p.layer_digest.as_deref(), Some(LAYER));
        assert_eq!(
            (&p.source_name, &p.source_version, &p.owner),
            (&None, &None, &None)
        );
    }
}

/// A Spring Boot jar (stored and deflated nested jars, and a jar in a jar in the jar), a war,
/// and an ear holding a war, all made of the real jars.
#[test]
fn nested_archives() {
    let (slf4j, io, provider) = (
        fixture("slf4j-api.jar"),
        fixture("commons-io.jar"),
        fixture("maven3-slf4j-provider.jar"),
    );
    let inner = zip(&[
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\n\r\n",
            Deflated,
        ),
        ("lib/maven3-slf4j-provider.jar", &provider, Deflated),
    ]);
    let app = zip(&[
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.JarLauncher\r\n\r\n",
            Deflated,
        ),
        (
            "META-INF/maven/com.example/demo/pom.properties",
            &pom("com.example", "demo", "0.0.1-SNAPSHOT"),
            Deflated,
        ),
        ("BOOT-INF/classes/com/example/Demo.class", b"\xca\xfe\xba\xbe", Deflated),
        ("BOOT-INF/lib/slf4j-api.jar", &slf4j, Stored),
        ("BOOT-INF/lib/commons-io.jar", &io, Deflated),
        ("BOOT-INF/lib/inner.jar", &inner, Stored),
    ]);
    let war = zip(&[
        ("WEB-INF/web.xml", b"<web-app/>", Deflated),
        ("WEB-INF/lib/slf4j-api.jar", &slf4j, Stored),
        ("WEB-INF/lib/commons-io.jar", &io, Deflated),
    ]);
    let ear = zip(&[
        ("META-INF/application.xml", b"<application/>", Deflated),
        ("shop.war", &war, Stored),
        ("lib/maven3-slf4j-provider.jar", &provider, Stored),
    ]);
    let a = run(&files(&[
        ("app/app.jar", app),
        ("opt/tomcat/webapps/shop.war", war),
        ("srv/store.ear", ear),
    ]));

    let mut want = vec![(
        "com.example:demo".to_owned(),
        "0.0.1-SNAPSHOT".to_owned(),
        "app/app.jar".to_owned(),
    )];
    for (jar, path) in [
        ("slf4j-api.jar", "app/app.jar!BOOT-INF/lib/slf4j-api.jar"),
        ("commons-io.jar", "app/app.jar!BOOT-INF/lib/commons-io.jar"),
        (
            "maven3-slf4j-provider.jar",
            "app/app.jar!BOOT-INF/lib/inner.jar!lib/maven3-slf4j-provider.jar",
        ),
        (
            "slf4j-api.jar",
            "opt/tomcat/webapps/shop.war!WEB-INF/lib/slf4j-api.jar",
        ),
        (
            "commons-io.jar",
            "opt/tomcat/webapps/shop.war!WEB-INF/lib/commons-io.jar",
        ),
        (
            "slf4j-api.jar",
            "srv/store.ear!shop.war!WEB-INF/lib/slf4j-api.jar",
        ),
        (
            "commons-io.jar",
            "srv/store.ear!shop.war!WEB-INF/lib/commons-io.jar",
        ),
        (
            "maven3-slf4j-provider.jar",
            "srv/store.ear!lib/maven3-slf4j-provider.jar",
        ),
    ] {
        want.extend(expected_at(jar, path));
    }
    assert_eq!(found(&a), sorted(want));
    assert_eq!(a.unreadable, []);
    // The archives without an identity of their own, and only those.
    assert_eq!(
        warned_paths(&a),
        BTreeSet::from([
            "app/app.jar!BOOT-INF/lib/inner.jar",
            "opt/tomcat/webapps/shop.war",
            "srv/store.ear",
            "srv/store.ear!shop.war",
        ])
    );
    assert!(
        a.warnings
            .iter()
            .all(|w| w.message.contains("identity unknown"))
    );
    // An archive's own identity comes before what it holds.
    assert_eq!(a.packages[0].file_path.as_deref(), Some("app/app.jar"));
}

/// A file the layer reader spooled to a temporary file reads as it does from memory.
#[test]
fn spooled_file() {
    let app = zip(&[
        (
            "META-INF/maven/g/app/pom.properties",
            &pom("g", "app", "1"),
            Deflated,
        ),
        (
            "BOOT-INF/lib/maven3-slf4j-provider.jar",
            &fixture("maven3-slf4j-provider.jar"),
            Stored,
        ),
        (
            "BOOT-INF/lib/commons-io.jar",
            &fixture("commons-io.jar"),
            Deflated,
        ),
    ]);
    let mut spooled = tempfile::tempfile().unwrap();
    spooled.write_all(&app).unwrap();
    let content = Content::Spooled {
        file: Arc::new(spooled),
        len: app.len() as u64,
    };
    let mut set = FileSet::new();
    set.insert("app.jar", CollectedFile::with_content(content, LAYER));
    let a = run(&set);
    let mut want = vec![("g:app".to_owned(), "1".to_owned(), "app.jar".to_owned())];
    want.extend(expected_at(
        "maven3-slf4j-provider.jar",
        "app.jar!BOOT-INF/lib/maven3-slf4j-provider.jar",
    ));
    want.extend(expected_at(
        "commons-io.jar",
        "app.jar!BOOT-INF/lib/commons-io.jar",
    ));
    assert_eq!(found(&a), sorted(want));
    assert_eq!((a.warnings.len(), a.unreadable.len()), (0, 0));
}

/// jackson-core's manifest as Maven Central's jar has it (its `pom.properties` removed).
#[test]
fn manifest_only_jar() {
    let manifest = b"Manifest-Version: 1.0\r\n\
        Bundle-SymbolicName: com.fasterxml.jackson.core.jackson-core\r\n\
        Implementation-Title: Jackson-core\r\n\
        Implementation-Vendor-Id: com.fasterxml.jackson.core\r\n\
        Implementation-Version: 2.14.1\r\n\
        Bundle-Version: 2.14.1\r\n\r\n";
    let jar = zip(&[
        ("META-INF/MANIFEST.MF", manifest, Deflated),
        (
            "com/fasterxml/jackson/core/JsonParser.class",
            b"\xca\xfe\xba\xbe",
            Deflated,
        ),
    ]);
    let a = run(&files(&[("app/lib/jackson-core-2.14.1.jar", jar)]));
    assert_eq!(
        found(&a),
        [(
            "com.fasterxml.jackson.core:jackson-core".to_owned(),
            "2.14.1".to_owned(),
            "app/lib/jackson-core-2.14.1.jar".to_owned()
        )]
    );
    assert_eq!((a.warnings.len(), a.unreadable.len()), (0, 0));
}

/// Debian's own commons-io manifest names no identity reliably (its symbolic name shortens
/// the group), so a jar holding only that manifest is unknown, whatever its file name says.
#[test]
fn jar_without_identity() {
    let debian = fixture("commons-io.jar");
    let mut archive = zip::ZipArchive::new(Cursor::new(debian)).unwrap();
    let mut manifest = Vec::new();
    std::io::copy(
        &mut archive.by_name("META-INF/MANIFEST.MF").unwrap(),
        &mut manifest,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&manifest).contains("Implementation-Vendor-Id: commons-io"));
    let jar = zip(&[
        ("META-INF/MANIFEST.MF", &manifest, Deflated),
        (
            "org/apache/commons/io/IOUtils.class",
            b"\xca\xfe\xba\xbe",
            Deflated,
        ),
    ]);
    let no_manifest = zip(&[("Main.class", b"\xca\xfe\xba\xbe", Deflated)]);
    let a = run(&files(&[
        ("opt/commons-io-2.11.0.jar", jar),
        ("opt/main.jar", no_manifest),
    ]));
    assert_eq!(a.packages, []);
    assert_eq!(a.unreadable, [], "read in full: not unreadable");
    assert_eq!(
        warned_paths(&a),
        BTreeSet::from(["opt/commons-io-2.11.0.jar", "opt/main.jar"])
    );
    assert!(a.warnings[0].message.contains("identity unknown"));
}

/// A bad `pom.properties` is skipped with a warning; the jar's other ones are reported.
#[test]
fn bad_pom_properties_entries_are_warnings() {
    let mut jar = zip(&[
        (
            "META-INF/maven/g/good/pom.properties",
            &pom("g", "good", "1.0"),
            Deflated,
        ),
        (
            "META-INF/maven/g/noversion/pom.properties",
            b"groupId=g\nartifactId=noversion\n",
            Deflated,
        ),
        (
            "META-INF/maven/g/lying/pom.properties",
            &pom("g", "lying", "1.0"),
            Deflated,
        ),
    ]);
    declare_size(&mut jar, "META-INF/maven/g/lying/pom.properties", 10);
    let a = run(&files(&[("app.jar", jar)]));
    assert_eq!(
        found(&a),
        [("g:good".to_owned(), "1.0".to_owned(), "app.jar".to_owned())]
    );
    assert_eq!(a.unreadable, []);
    let messages: Vec<&str> = a.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("no version"), "{messages:?}");
    assert!(messages[1].contains("Malformed"), "{messages:?}");
}

#[test]
fn truncated_and_malformed_files() {
    let slf4j = fixture("slf4j-api.jar");
    let half = slf4j[..slf4j.len() / 2].to_vec();
    let a = run(&files(&[
        ("opt/cut.jar", half),
        ("opt/notes.jar", b"not a zip at all".to_vec()),
        ("opt/empty.war", Vec::new()),
        ("usr/share/java/commons-io.jar", fixture("commons-io.jar")),
    ]));
    assert_eq!(
        unreadable(&a),
        [
            ("opt/cut.jar", "Truncated"),
            ("opt/empty.war", "Malformed"),
            ("opt/notes.jar", "Malformed"),
        ]
    );
    // The rest of the image is still read.
    assert_eq!(
        found(&a),
        sorted(expected_at(
            "commons-io.jar",
            "usr/share/java/commons-io.jar"
        ))
    );
}

/// A truncated or lying nested jar is unreadable under its own path; its siblings and parent
/// are still read.
#[test]
fn bad_nested_archives() {
    let slf4j = fixture("slf4j-api.jar");
    let io = fixture("commons-io.jar");
    let mut app = zip(&[
        (
            "META-INF/maven/com.example/demo/pom.properties",
            &pom("com.example", "demo", "1"),
            Deflated,
        ),
        ("BOOT-INF/lib/cut.jar", &slf4j[..slf4j.len() / 2], Stored),
        ("BOOT-INF/lib/smaller.jar", &slf4j, Deflated),
        ("BOOT-INF/lib/bigger.jar", &slf4j, Deflated),
        ("BOOT-INF/lib/commons-io.jar", &io, Stored),
        (
            "BOOT-INF/lib/bomb.jar",
            &vec![0u8; 4 * 1024 * 1024],
            Deflated,
        ),
    ]);
    // Headers that lie about the inflated size, both ways.
    declare_size(&mut app, "BOOT-INF/lib/smaller.jar", 1000);
    declare_size(
        &mut app,
        "BOOT-INF/lib/bigger.jar",
        slf4j.len() as u32 + 5000,
    );
    let a = run(&files(&[("app.jar", app)]));
    assert_eq!(
        unreadable(&a),
        [
            ("app.jar!BOOT-INF/lib/cut.jar", "Truncated"),
            ("app.jar!BOOT-INF/lib/smaller.jar", "Malformed"),
            ("app.jar!BOOT-INF/lib/bigger.jar", "Malformed"),
            ("app.jar!BOOT-INF/lib/bomb.jar", "TooLarge"),
        ]
    );
    assert!(
        a.unreadable[3].reason.contains("ratio"),
        "{:?}",
        a.unreadable[3]
    );
    let mut want = vec![(
        "com.example:demo".to_owned(),
        "1".to_owned(),
        "app.jar".to_owned(),
    )];
    want.extend(expected_at(
        "commons-io.jar",
        "app.jar!BOOT-INF/lib/commons-io.jar",
    ));
    assert_eq!(found(&a), sorted(want));
}

/// A jar holding a jar holding a jar...: read down to the depth limit, the level below it is
/// `TooDeep`.
#[test]
fn nesting_past_the_depth_limit() {
    let mut jar = zip(&[(
        "META-INF/maven/g/level-6/pom.properties",
        &pom("g", "level-6", "1"),
        Deflated,
    )]);
    for level in (0..6).rev() {
        let artifact = format!("level-{level}");
        jar = zip(&[
            (
                &format!("META-INF/maven/g/{artifact}/pom.properties"),
                &pom("g", &artifact, "1"),
                Deflated,
            ),
            ("lib/nest.jar", &jar, Stored),
        ]);
    }
    let a = run(&files(&[("self.jar", jar)]));
    let path = |depth: usize| format!("self.jar{}", "!lib/nest.jar".repeat(depth));
    let want: Vec<_> = (0..=Limits::DEFAULT.depth)
        .map(|d| (format!("g:level-{d}"), "1".to_owned(), path(d)))
        .collect();
    assert_eq!(found(&a), sorted(want));
    let too_deep = path(Limits::DEFAULT.depth + 1);
    assert_eq!(unreadable(&a), [(too_deep.as_str(), "TooDeep")]);
}

#[test]
fn limits_on_one_archive() {
    let io = fixture("commons-io.jar");
    let slf4j = fixture("slf4j-api.jar");
    let entries = zip::ZipArchive::new(Cursor::new(io.clone())).unwrap().len();
    let small = Limits {
        entries: entries - 1,
        nested_bytes: slf4j.len() as u64 - 1,
        ..Limits::DEFAULT
    };
    // Too many entries.
    let a = run_with(small, "commons-io.jar", io.clone());
    assert_eq!(unreadable(&a), [("commons-io.jar", "TooLarge")]);
    assert!(a.unreadable[0].reason.contains("entries"));
    // A nested jar declaring more than the limit is refused before it is inflated; its
    // parent is still read.
    let app = zip(&[
        (
            "META-INF/maven/g/app/pom.properties",
            &pom("g", "app", "1"),
            Deflated,
        ),
        ("lib/slf4j-api.jar", &slf4j, Stored),
    ]);
    let a = run_with(small, "app.jar", app);
    assert_eq!(unreadable(&a), [("app.jar!lib/slf4j-api.jar", "TooLarge")]);
    assert_eq!(
        found(&a),
        [("g:app".to_owned(), "1".to_owned(), "app.jar".to_owned())]
    );
}

/// Limits on a whole image file stop reading it, keeping what was found.
#[test]
fn limits_on_one_image_file() {
    let slf4j = fixture("slf4j-api.jar");
    let app = zip(&[
        (
            "META-INF/maven/g/app/pom.properties",
            &pom("g", "app", "1"),
            Deflated,
        ),
        ("lib/slf4j-api.jar", &slf4j, Stored),
        ("lib/commons-io.jar", &fixture("commons-io.jar"), Stored),
    ]);
    let budget = Limits {
        inflated_bytes: slf4j.len() as u64 + 10_000,
        ..Limits::DEFAULT
    };
    let a = run_with(budget, "app.jar", app);
    assert_eq!(unreadable(&a), [("app.jar", "TooLarge")]);
    let mut want = vec![("g:app".to_owned(), "1".to_owned(), "app.jar".to_owned())];
    want.extend(expected_at("slf4j-api.jar", "app.jar!lib/slf4j-api.jar"));
    assert_eq!(found(&a), sorted(want));

    let one = Limits {
        packages: 1,
        ..Limits::DEFAULT
    };
    let a = run_with(one, "p.jar", fixture("maven3-slf4j-provider.jar"));
    assert_eq!(unreadable(&a), [("p.jar", "TooLarge")]);
    assert_eq!(a.packages.len(), 1);
}

/// Guava 31.1-jre's real `pom.properties` (libguava-java; the 2.9 MB jar is not kept, so the
/// jar is built around it here) matches the fixture's Guava advisories fixed in
/// 32.0.0-android; Debian's real commons-io 2.11.0 is past the one commons-io fix (2.7).
#[test]
fn real_identity_matches_maven_advisories() {
    let guava = zip(&[(
        "META-INF/maven/com.google.guava/guava/pom.properties",
        &fixture("guava-31.1-jre.pom.properties"),
        Deflated,
    )]);
    let a = run(&files(&[
        ("usr/share/java/guava.jar", guava),
        ("usr/share/java/commons-io.jar", fixture("commons-io.jar")),
    ]));
    let inv = Inventory {
        os: None,
        packages: a.packages,
        unreadable: Vec::new(),
    };
    let advisories: Vec<_> = parse_records(&testutil::read(
        "osv/records/maven/bundle-osv-scalibr-zeppelin-server-vulnerabilities.json",
    ))
    .into_iter()
    .flatten()
    .collect();
    let keys: BTreeSet<(String, String)> = match_keys(&inv).into_iter().collect();
    let candidates: Vec<Candidate> = advisories
        .iter()
        .flat_map(Candidate::from_advisory)
        .filter(|c| keys.contains(&(c.affected.ecosystem.clone(), c.affected.name.clone())))
        .collect();
    // Both packages have advisories to be compared with.
    assert!(
        candidates
            .iter()
            .any(|c| c.affected.name == "commons-io:commons-io")
    );
    let report = match_inventory(&inv, &candidates);
    let matched: BTreeSet<(&str, &str, Option<&str>)> = report
        .matches
        .iter()
        .map(|m| {
            (
                m.package_name.as_str(),
                m.advisory_id.as_str(),
                m.fixed_version.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        matched,
        BTreeSet::from([
            (
                "com.google.guava:guava",
                "GHSA-5mg8-w23w-74h3",
                Some("32.0.0-android")
            ),
            (
                "com.google.guava:guava",
                "GHSA-7g45-4rm6-3mm3",
                Some("32.0.0-android")
            ),
        ])
    );
    assert_eq!(report.unknown.len(), 0, "{:?}", report.unknown);
}
