//! Rust executables built with `cargo auditable`: the crates they were built from.
//!
//! Files: any ELF file, wherever it is installed (chosen by its first bytes). `cargo auditable`
//! stores the dependency tree in the section `.dep-v0` as zlib-compressed JSON
//! (`{"packages":[{"name","version","source","kind","dependencies","root"}],...}`); an ELF file
//! without that section (any other executable or library) gives nothing. Symbol stripping
//! (`strip = true`) keeps the section.
//!
//! Packages (kind `Cargo`): every package whose `source` is `crates.io`, at the version written
//! there, build dependencies included (a build script or a procedural macro shapes the code the
//! binary holds, and `cargo audit bin` reports them too). Other sources are skipped silently:
//! `local` (the root crate and path dependencies: no published version to match), `git`,
//! `registry` (another registry: a crate of the same name there is not the crates.io crate).
//!
//! Limits: the section is at most 8 MiB and decompresses to at most 8 MiB (more is reported
//! `TooLarge`: a zlib bomb); data that is not zlib or not the expected JSON is `Malformed`. Such
//! a file is reported unreadable and the rest of the image is still read.

use std::io::Read;

use flate2::read::ZlibDecoder;
use serde::Deserialize;

use super::elf::{self, Elf, Unreadable};
use super::{Analysis, Analyzer, AnalyzerError, CollectedFile, FileSet, ReadSeek};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "rustaudit";
const SECTION: &str = ".dep-v0";
const MAX_COMPRESSED: u64 = 8 << 20;
const MAX_JSON: u64 = 8 << 20;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustAuditAnalyzer;

impl Analyzer for RustAuditAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, _path: &str) -> bool {
        false
    }

    fn wants_content(&self, _path: &str, head: &[u8]) -> bool {
        elf::is_elf(head)
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        Ok(elf::analyze_elf_files(NAME, files, read_binary))
    }
}

#[derive(Deserialize)]
struct VersionInfo {
    packages: Vec<AuditedPackage>,
}

#[derive(Deserialize)]
struct AuditedPackage {
    name: String,
    version: String,
    source: String,
}

fn read_binary(
    path: &str,
    file: &CollectedFile,
    reader: &mut dyn ReadSeek,
    elf: &Elf,
    analysis: &mut Analysis,
) -> Result<(), Unreadable> {
    let Some(section) = elf.section(SECTION) else {
        return Ok(());
    };
    let compressed = elf.read_section(reader, section, MAX_COMPRESSED)?;
    let json = inflate(&compressed)?;
    let info: VersionInfo = serde_json::from_slice(&json).map_err(|e| {
        Unreadable::new(
            "Malformed",
            format!("{SECTION} is not cargo-auditable JSON: {e}"),
        )
    })?;
    analysis.packages.extend(
        info.packages
            .iter()
            .filter(|p| p.source == "crates.io")
            .map(|p| {
                InventoryPackage::language(
                    PackageKind::Cargo,
                    &*p.name,
                    &*p.version,
                    path,
                    &file.layer_digest,
                )
            }),
    );
    Ok(())
}

/// The zlib-compressed bytes, decompressed; `TooLarge` past [`MAX_JSON`].
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, Unreadable> {
    let mut json = Vec::new();
    ZlibDecoder::new(compressed)
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| Unreadable::new("Malformed", format!("{SECTION} is not zlib data: {e}")))?;
    if json.len() as u64 > MAX_JSON {
        return Err(Unreadable::new(
            "TooLarge",
            format!("{SECTION} decompresses to more than {MAX_JSON} bytes"),
        ));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    use super::*;
    use crate::scanner::advisories::matcher::InventoryPackage;
    use crate::scanner::analyzers::elf::testelf::{TestElf, TestSection};
    use crate::scanner::analyzers::testutil::{binary_set, crate_fixture, found_at};

    fn fixture(name: &str) -> Vec<u8> {
        let path = crate_fixture(&format!("rust-auditable/{name}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn run(files: &[(&str, Vec<u8>)]) -> Analysis {
        RustAuditAnalyzer.analyze(&binary_set(files)).unwrap()
    }

    fn crate_package(name: &str, version: &str, path: &str) -> InventoryPackage {
        found_at(PackageKind::Cargo, name, version, path)
    }

    /// The crates.io packages of a Cargo.lock, in its (name) order.
    fn crates_io_packages_of_lock(lock: &str, path: &str) -> Vec<InventoryPackage> {
        let mut out = Vec::new();
        for block in lock.split("[[package]]").skip(1) {
            let field = |key: &str| {
                block.lines().find_map(|l| {
                    l.strip_prefix(&format!("{key} = \""))
                        .and_then(|v| v.strip_suffix('"'))
                })
            };
            if field("source") == Some("registry+https://github.com/rust-lang/crates.io-index") {
                out.push(crate_package(
                    field("name").unwrap(),
                    field("version").unwrap(),
                    path,
                ));
            }
        }
        out
    }

    fn with_dep_v0(data: Vec<u8>) -> Vec<u8> {
        TestElf {
            class64: false,
            big_endian: true,
            section_headers: true,
            sections: vec![TestSection {
                name: SECTION,
                addr: 0,
                data,
            }],
        }
        .build()
    }

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn wants_elf_files_by_content() {
        assert!(RustAuditAnalyzer.wants_content("usr/bin/x", &fixture("tiny-auditable")[..64]));
        assert!(!RustAuditAnalyzer.wants_content("usr/bin/x", b"MZ\x90\x00"));
        assert!(!RustAuditAnalyzer.required("usr/bin/x"));
    }

    #[test]
    fn real_binary_as_its_cargo_lock_lists_it() {
        let path = "usr/local/bin/tiny-auditable";
        let a = run(&[(path, fixture("tiny-auditable"))]);
        let lock = String::from_utf8(fixture("Cargo.lock")).unwrap();
        let expected = crates_io_packages_of_lock(&lock, path);
        assert_eq!(expected.len(), 3);
        assert_eq!(a.packages, expected);
        assert_eq!((a.warnings, a.unreadable), (vec![], vec![]));
    }

    #[test]
    fn other_elf_files_give_nothing() {
        let go = format!("{}/tests/fixtures/go/hello", env!("CARGO_MANIFEST_DIR"));
        let a = run(&[
            ("bin/true", std::fs::read("/bin/true").unwrap()),
            ("app/hello", std::fs::read(go).unwrap()),
        ]);
        assert_eq!(a, Analysis::default());
    }

    #[test]
    fn only_crates_io_sources() {
        let json = r#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","root":true,"dependencies":[1,2,3,4]},
            {"name":"serde","version":"1.0.200","source":"crates.io","kind":"runtime"},
            {"name":"cc","version":"1.0.90","source":"crates.io","kind":"build"},
            {"name":"forked","version":"0.2.0","source":"git"},
            {"name":"internal","version":"3.0.0","source":"registry"}
        ],"format":1}"#;
        let a = run(&[("app", with_dep_v0(zlib(json.as_bytes())))]);
        assert_eq!(
            a.packages,
            [
                crate_package("serde", "1.0.200", "app"),
                crate_package("cc", "1.0.90", "app")
            ]
        );
    }

    #[test]
    fn unreadable_binaries_are_coded_and_the_others_still_read() {
        let real = fixture("tiny-auditable");
        let bomb = zlib(&vec![b' '; (MAX_JSON + 1024) as usize]);
        assert!(bomb.len() < 64 * 1024);
        let a = run(&[
            ("a/bomb", with_dep_v0(bomb)),
            ("b/not-zlib", with_dep_v0(b"plain text".to_vec())),
            ("c/not-json", with_dep_v0(zlib(b"{\"packages\":7}"))),
            ("d/truncated", real[..real.len() - 100].to_vec()),
            ("e/good", real.clone()),
        ]);
        let codes: Vec<(&str, &str)> = a
            .unreadable
            .iter()
            .map(|u| (u.path.as_str(), u.code))
            .collect();
        assert_eq!(
            codes,
            [
                ("a/bomb", "TooLarge"),
                ("b/not-zlib", "Malformed"),
                ("c/not-json", "Malformed"),
                ("d/truncated", "Truncated"),
            ]
        );
        assert_eq!(a.packages.len(), 3);
        assert!(
            a.packages
                .iter()
                .all(|p| p.file_path.as_deref() == Some("e/good"))
        );
    }
}
