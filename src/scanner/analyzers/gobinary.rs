//! Go executables: the toolchain and the modules a binary was built from.
//!
//! Files: any ELF file, wherever it is installed (chosen by its first bytes). The build
//! information is found as Go's own `debug/buildinfo` finds it: in the `.go.buildinfo` section,
//! or — when the file has no section headers — in the first 64 KiB of the first writable,
//! non-executable loadable segment, at a 16-byte aligned `\xff Go buildinf:` header. An ELF
//! file with section headers but no `.go.buildinfo` is not a Go binary (Go has written that
//! section since 1.13) and gives nothing. Both layouts of the header are read: the inline
//! strings of Go ≥ 1.18 and the pointers to string headers of older releases.
//!
//! Packages (kind `Go`), versions spelled as the OSV Go records spell them (no leading `v`):
//! * `stdlib` at the toolchain version: `go1.21.5` → `1.21.5`, `go1.22` → `1.22.0`,
//!   `go1.21rc2` → `1.21.0-rc.2`; a GOEXPERIMENT suffix (`go1.21.5 X:boringcrypto`) is
//!   ignored; a development toolchain (`devel ...`) gives no `stdlib`, with a warning.
//! * the main module (`mod` line) unless its version is `(devel)` (built from a checkout);
//! * every dependency (`dep` line). A replacement (`=>` line) takes the place of the module it
//!   replaces; a replacement by a local directory (no version, or `(devel)`) is skipped with a
//!   warning: the code is whatever that directory held, and the replaced module's version is a
//!   placeholder (`v0.0.0-00010101000000-000000000000`) that would match every advisory.
//!
//! A binary built without modules (`GO111MODULE=off`) gives `stdlib` only. A file whose build
//! information cannot be read (truncated, lengths past the section, beyond the caps) is
//! reported unreadable with a code; the rest of the image is still read. Limits: at most 4 MiB
//! of `.go.buildinfo` (or of the data segment) is read, and each of its two strings is at most
//! 1 MiB (`TooLarge`); real ones are a few KiB.

use super::elf::{self, Elf, Unreadable};
use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, CollectedFile, FileSet, ReadSeek};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "gobinary";

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const HEADER_ALIGN: usize = 16;
/// How much of the data segment Go's `debug/buildinfo` searches for the header (when there
/// is no `.go.buildinfo` section).
const SEARCH_LEN: u64 = 64 * 1024;
/// `.go.buildinfo` holds the header and the two strings; real ones are tens of KiB.
const MAX_SECTION: u64 = 4 << 20;
const MAX_STRING: u64 = 1 << 20;
/// Flag: the version and module strings follow the header (Go ≥ 1.18).
const FLAG_INLINE_STRINGS: u8 = 2;
/// Sentinels around the module information (`cmd/go/internal/modload.infoStart`, `infoEnd`).
const MODINFO_SENTINEL_LEN: usize = 16;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoBinaryAnalyzer;

impl Analyzer for GoBinaryAnalyzer {
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

fn read_binary(
    path: &str,
    file: &CollectedFile,
    reader: &mut dyn ReadSeek,
    elf: &Elf,
    analysis: &mut Analysis,
) -> Result<(), Unreadable> {
    let Some((toolchain, modinfo)) = build_info(reader, elf)? else {
        return Ok(());
    };
    let package = |name: &str, version: &str| {
        InventoryPackage::language(PackageKind::Go, name, version, path, &file.layer_digest)
    };
    match stdlib_version(&toolchain) {
        Some(version) => analysis.packages.push(package("stdlib", &version)),
        None => analysis.warnings.push(AnalyzerWarning::new(
            NAME,
            path,
            format!("toolchain {toolchain:?} has no release version: no stdlib package"),
        )),
    }
    for module in modules(&modinfo, path, &mut analysis.warnings) {
        analysis.packages.push(package(&module.0, &module.1));
    }
    Ok(())
}

/// The toolchain version and the module information (without its sentinels; empty for a
/// binary built without modules), or `None` for an ELF file that is not a Go binary.
fn build_info(
    reader: &mut dyn ReadSeek,
    elf: &Elf,
) -> Result<Option<(String, String)>, Unreadable> {
    let (data, search_len) = if let Some(section) = elf.section(".go.buildinfo") {
        let data = elf.read_section(reader, section, MAX_SECTION)?;
        let len = data.len();
        (data, len)
    } else if elf.sections.is_empty() {
        match elf.first_writable_segment() {
            // The header is near the start; the strings after it may run past 64 KiB.
            Some(segment) => (
                elf.read_address(reader, segment.vaddr, MAX_SECTION, MAX_SECTION)?,
                SEARCH_LEN as usize,
            ),
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let Some(header) = find_header(&data, search_len) else {
        return Ok(None);
    };
    let (version, modinfo) = match (header.get(14), header.get(15)) {
        (Some(_), Some(flags)) if flags & FLAG_INLINE_STRINGS != 0 => {
            let rest = header.get(HEADER_LEN..).unwrap_or_default();
            let (version, rest) = inline_string(rest)?;
            let (modinfo, _) = inline_string(rest)?;
            (version.to_vec(), modinfo.to_vec())
        }
        (Some(&ptr_size), Some(&flags)) => {
            let big_endian = flags != 0;
            let ptr_size = match ptr_size {
                4 | 8 => usize::from(ptr_size),
                other => {
                    return Err(Unreadable::new(
                        "Malformed",
                        format!("build information with {other}-byte pointers"),
                    ));
                }
            };
            let pointer = |at: usize| {
                header
                    .get(at..at + ptr_size)
                    .map(|b| elf::uint(b, big_endian))
                    .ok_or_else(|| Unreadable::new("Truncated", "build information header"))
            };
            let version = pointed_string(reader, elf, pointer(16)?, ptr_size, big_endian)?;
            let modinfo =
                pointed_string(reader, elf, pointer(16 + ptr_size)?, ptr_size, big_endian)?;
            (version, modinfo)
        }
        _ => return Err(Unreadable::new("Truncated", "build information header")),
    };
    if version.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        String::from_utf8_lossy(&version).into_owned(),
        String::from_utf8_lossy(strip_sentinels(&modinfo)).into_owned(),
    )))
}

/// The build information header and what follows it: the first 16-byte aligned magic in the
/// first `search_len` bytes with a whole header after it.
fn find_header(data: &[u8], search_len: usize) -> Option<&[u8]> {
    (0..data.len().min(search_len))
        .step_by(HEADER_ALIGN)
        .map(|at| data.get(at..).unwrap_or_default())
        .find(|rest| rest.len() >= HEADER_LEN && rest.starts_with(MAGIC))
}

/// A string stored as its unsigned varint length and its bytes; the rest of `data`.
fn inline_string(data: &[u8]) -> Result<(&[u8], &[u8]), Unreadable> {
    let mut len: u64 = 0;
    let mut used = 0;
    for (i, byte) in data.iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            used = i + 1;
            break;
        }
    }
    if used == 0 {
        return Err(Unreadable::new(
            "Malformed",
            "build information string length is not a varint",
        ));
    }
    if len > MAX_STRING {
        return Err(Unreadable::new(
            "TooLarge",
            format!("build information string of {len} bytes, more than {MAX_STRING}"),
        ));
    }
    let rest = data.get(used..).unwrap_or_default();
    // `len` ≤ MAX_STRING: the conversion cannot truncate.
    match (rest.get(..len as usize), rest.get(len as usize..)) {
        (Some(string), Some(after)) => Ok((string, after)),
        _ => Err(Unreadable::new(
            "Malformed",
            format!("build information string of {len} bytes runs past its section"),
        )),
    }
}

/// A string the pre-1.18 header points to: a Go string header (data pointer, length) at `addr`.
fn pointed_string(
    reader: &mut dyn ReadSeek,
    elf: &Elf,
    addr: u64,
    ptr_size: usize,
    big_endian: bool,
) -> Result<Vec<u8>, Unreadable> {
    let header_len = 2 * ptr_size as u64;
    let header = elf.read_address(reader, addr, header_len, header_len)?;
    let (Some(data), Some(len)) = (header.get(..ptr_size), header.get(ptr_size..)) else {
        return Err(Unreadable::new(
            "Truncated",
            "build information string header",
        ));
    };
    if len.len() != ptr_size {
        return Err(Unreadable::new(
            "Truncated",
            "build information string header",
        ));
    }
    let len = elf::uint(len, big_endian);
    let bytes = elf.read_address(reader, elf::uint(data, big_endian), len, MAX_STRING)?;
    if bytes.len() as u64 != len {
        return Err(Unreadable::new(
            "Malformed",
            "build information string runs past its segment",
        ));
    }
    Ok(bytes)
}

/// Go's own test: module information is framed by two 16-byte sentinels and ends in a newline.
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    let len = modinfo.len();
    if len > 2 * MODINFO_SENTINEL_LEN && modinfo.get(len - MODINFO_SENTINEL_LEN - 1) == Some(&b'\n')
    {
        modinfo
            .get(MODINFO_SENTINEL_LEN..len - MODINFO_SENTINEL_LEN)
            .unwrap_or_default()
    } else {
        &[]
    }
}

/// The OSV spelling of a toolchain's version (see the module docs), `None` for a development
/// toolchain.
fn stdlib_version(toolchain: &str) -> Option<String> {
    let release = toolchain.split_whitespace().next()?.strip_prefix("go")?;
    let numbers_end = release
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(release.len());
    let (numbers, suffix) = release.split_at(numbers_end);
    let mut parts: Vec<&str> = numbers.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    let version = parts.join(".");
    let prerelease = ["rc", "beta"].into_iter().find_map(|tag| {
        let n = suffix.strip_prefix(tag)?;
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| format!("{tag}.{n}"))
    });
    match prerelease {
        Some(pre) => Some(format!("{version}-{pre}")),
        // Vendor builds append `-<something>` to a release version.
        None if suffix.is_empty() || suffix.starts_with('-') => Some(version),
        None => None,
    }
}

/// `(path, version)` of the main module and every dependency, replacements applied.
fn modules(
    modinfo: &str,
    path: &str,
    warnings: &mut Vec<AnalyzerWarning>,
) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    // Whether the last `mod`/`dep` line gave a module a `=>` line may replace.
    let mut replaceable = false;
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let (kind, module, version) = match fields.as_slice() {
            [kind, module, version, ..] => (*kind, *module, *version),
            [kind, ..] if matches!(*kind, "mod" | "dep" | "=>") => {
                warnings.push(AnalyzerWarning::new(
                    NAME,
                    path,
                    format!("module line without a version: {line:?}: skipped"),
                ));
                replaceable = false;
                continue;
            }
            _ => continue,
        };
        match kind {
            "mod" | "dep" => {
                replaceable = false;
                if kind == "mod" && version == "(devel)" {
                    continue;
                }
                found.push((module.to_owned(), osv_version(version)));
                replaceable = true;
            }
            "=>" if replaceable => {
                replaceable = false;
                let replaced = found.pop();
                if version.is_empty() || version == "(devel)" {
                    warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        format!(
                            "module {:?} is replaced by local directory {module:?}: skipped",
                            replaced.map(|r| r.0).unwrap_or_default()
                        ),
                    ));
                } else {
                    found.push((module.to_owned(), osv_version(version)));
                }
            }
            _ => {}
        }
    }
    found
}

/// Module versions as the OSV Go records spell them: without the leading `v`.
fn osv_version(version: &str) -> String {
    version.strip_prefix('v').unwrap_or(version).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::advisories::matcher::{
        Candidate, Inventory, InventoryPackage, match_inventory,
    };
    use crate::scanner::advisories::osv::parse_record;
    use crate::scanner::analyzers::elf::testelf::{TestElf, TestSection};
    use crate::scanner::analyzers::testutil::{binary_set, crate_fixture, found_at, read};

    fn go_fixture(name: &str) -> Vec<u8> {
        let path = crate_fixture(&format!("go/{name}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn run(files: &[(&str, Vec<u8>)]) -> Analysis {
        GoBinaryAnalyzer.analyze(&binary_set(files)).unwrap()
    }

    fn go(name: &str, version: &str, path: &str) -> InventoryPackage {
        found_at(PackageKind::Go, name, version, path)
    }

    /// What `go version -m` printed for the binary, read on its own terms: the toolchain on the
    /// first line, then `mod`/`dep` lines each optionally followed by a `=>` line; local
    /// directory replacements and the `(devel)` main module are not packages.
    fn expected_from_go_version_m(text: &str, path: &str) -> Vec<InventoryPackage> {
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        let toolchain = first.split(": ").nth(1).unwrap();
        let mut stdlib = toolchain.trim_start_matches("go").to_owned();
        if stdlib.matches('.').count() == 1 {
            stdlib.push_str(".0");
        }
        let mut out = vec![go("stdlib", &stdlib, path)];
        for line in lines {
            let f: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
            match f[0] {
                "mod" | "dep" if f[2] != "(devel)" => {
                    out.push(go(f[1], &f[2][1..], path));
                }
                "=>" => {
                    out.pop();
                    if f[2].starts_with('v') {
                        out.push(go(f[1], &f[2][1..], path));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn wants_elf_files_by_content() {
        assert!(GoBinaryAnalyzer.wants_content("ko-app/x", b"\x7fELF\x02\x01\x01"));
        assert!(GoBinaryAnalyzer.wants_content("usr/local/bin/app", &go_fixture("hello")[..64]));
        assert!(!GoBinaryAnalyzer.wants_content("usr/local/bin/app", b"#!/bin/sh\n"));
        assert!(!GoBinaryAnalyzer.wants_content("usr/local/bin/app", b"\x7fEL"));
        assert!(!GoBinaryAnalyzer.required("usr/local/bin/app"));
    }

    /// The amd64 build and the 32-bit big-endian MIPS build of one program.
    #[test]
    fn module_binaries_as_go_version_m_lists_them() {
        for binary in ["hello", "hello-mips"] {
            let path = format!("usr/local/bin/{binary}");
            let a = run(&[(&path, go_fixture(binary))]);
            let expected = expected_from_go_version_m(
                &String::from_utf8(go_fixture(&format!("{binary}.go-version-m.txt"))).unwrap(),
                &path,
            );
            assert_eq!(a.packages, expected, "{binary}");
            // The replacement by ./local is the one skipped module.
            assert_eq!(
                a.packages
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>(),
                ["stdlib", "github.com/google/uuid", "github.com/pkg/errors"]
            );
            assert_eq!(a.packages[2].version, "0.9.1");
            assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
            assert!(
                a.warnings[0].message.contains("\"./local\""),
                "{:?}",
                a.warnings
            );
            assert_eq!(a.unreadable, []);
        }
    }

    #[test]
    fn binary_built_without_modules_gives_the_toolchain_only() {
        let path = "ko-app/nomod";
        let a = run(&[(path, go_fixture("nomod"))]);
        let expected = expected_from_go_version_m(
            &String::from_utf8(go_fixture("nomod.go-version-m.txt")).unwrap(),
            path,
        );
        assert_eq!(expected.len(), 1);
        assert_eq!(a.packages, expected);
        assert_eq!((a.warnings, a.unreadable), (vec![], vec![]));
    }

    /// With the section header table gone, the header is found in the data segment.
    #[test]
    fn binaries_without_section_headers() {
        let mut amd64 = go_fixture("hello");
        amd64[40..48].fill(0); // e_shoff
        amd64[60..64].fill(0); // e_shnum, e_shstrndx
        let mut mips = go_fixture("hello-mips");
        mips[32..36].fill(0);
        mips[48..52].fill(0);
        for (binary, bytes) in [("hello", amd64), ("hello-mips", mips)] {
            let a = run(&[("app", bytes)]);
            assert_eq!(a.packages, run(&[("app", go_fixture(binary))]).packages);
            assert_eq!(a.packages.len(), 3);
        }
    }

    #[test]
    fn other_elf_files_give_nothing() {
        let rust = format!(
            "{}/tests/fixtures/rust-auditable/tiny-auditable",
            env!("CARGO_MANIFEST_DIR")
        );
        let a = run(&[
            ("bin/true", std::fs::read("/bin/true").unwrap()),
            ("usr/bin/tiny", std::fs::read(rust).unwrap()),
            ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n".to_vec()),
        ]);
        assert_eq!(a, Analysis::default());
    }

    #[test]
    fn unreadable_binaries_are_coded_and_the_others_still_read() {
        let hello = go_fixture("hello");
        let mut shoff_past_end = hello.clone();
        shoff_past_end[40..48].copy_from_slice(&(hello.len() as u64 * 2).to_le_bytes());
        let a = run(&[
            ("a/truncated", hello[..hello.len() / 2].to_vec()),
            ("b/shoff", shoff_past_end),
            ("c/nomod", go_fixture("nomod")),
        ]);
        let codes: Vec<(&str, &str)> = a
            .unreadable
            .iter()
            .map(|u| (u.path.as_str(), u.code))
            .collect();
        assert_eq!(
            codes,
            [("a/truncated", "Truncated"), ("b/shoff", "Truncated")]
        );
        assert!(a.unreadable.iter().all(|u| u.analyzer == NAME));
        assert_eq!(a.packages, [go("stdlib", "1.19.8", "c/nomod")]);
    }

    /// A `.go.buildinfo` section in a written-from-scratch ELF file.
    fn with_buildinfo(data: Vec<u8>, class64: bool, big_endian: bool) -> Vec<u8> {
        TestElf {
            class64,
            big_endian,
            section_headers: true,
            sections: vec![TestSection {
                name: ".go.buildinfo",
                addr: 0x50_0000,
                data,
            }],
        }
        .build()
    }

    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    }

    fn framed(modinfo: &str) -> Vec<u8> {
        let mut out = vec![0xAA; 16];
        out.extend_from_slice(modinfo.as_bytes());
        out.extend([0xBB; 16]);
        out
    }

    fn inline_header() -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.extend([8, FLAG_INLINE_STRINGS]);
        data.resize(HEADER_LEN, 0);
        data
    }

    const MODINFO: &str = "path\texample.com/app\nmod\texample.com/app\tv1.2.3\th1:x=\n\
        dep\tgolang.org/x/text\tv0.3.7\th1:y=\ndep\tgolang.org/x/net\tv0.1.0\n\
        =>\tgithub.com/fork/net\tv0.4.0\th1:z=\nbuild\tGOOS=linux\n";

    #[test]
    fn inline_strings_of_go_1_18_in_32_bit_files() {
        let mut data = inline_header();
        data.extend(varint(6));
        data.extend(b"go1.22");
        data.extend(varint(framed(MODINFO).len() as u64));
        data.extend(framed(MODINFO));
        let a = run(&[("app", with_buildinfo(data, false, false))]);
        let names: Vec<(&str, &str)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("stdlib", "1.22.0"),
                ("example.com/app", "1.2.3"),
                ("golang.org/x/text", "0.3.7"),
                ("github.com/fork/net", "0.4.0"),
            ]
        );
    }

    /// Before Go 1.18 the header points to Go string headers; here a 32-bit big-endian file.
    #[test]
    fn pointers_to_strings_before_go_1_18() {
        let base: u32 = 0x50_0000;
        let version = b"go1.16.15";
        let modinfo = framed(MODINFO);
        let strings = base + 48;
        let mut data = MAGIC.to_vec();
        data.extend([4, 1]); // 4-byte pointers, big-endian
        data.extend((base + 32).to_be_bytes());
        data.extend((base + 40).to_be_bytes());
        data.resize(32, 0);
        data.extend(strings.to_be_bytes());
        data.extend((version.len() as u32).to_be_bytes());
        data.extend((strings + version.len() as u32).to_be_bytes());
        data.extend((modinfo.len() as u32).to_be_bytes());
        data.extend(version);
        data.extend(&modinfo);
        let a = run(&[("app", with_buildinfo(data.clone(), false, true))]);
        assert_eq!(a.unreadable, []);
        assert_eq!(a.packages.len(), 4);
        assert_eq!(a.packages[0], go("stdlib", "1.16.15", "app"));

        // A string header pointing outside every segment.
        data[32..36].copy_from_slice(&0x10u32.to_be_bytes());
        let a = run(&[("app", with_buildinfo(data, false, true))]);
        assert_eq!(a.unreadable[0].code, "Malformed", "{:?}", a.unreadable);
    }

    #[test]
    fn absurd_string_lengths_are_coded() {
        let cases: [(Vec<u8>, &str); 3] = [
            (varint(u64::MAX), "TooLarge"),
            (varint(1000), "Malformed"),
            (vec![0x80; 12], "Malformed"),
        ];
        for (length, code) in cases {
            let mut data = inline_header();
            data.extend(length);
            data.extend(b"go1.21.5");
            let a = run(&[
                ("bad", with_buildinfo(data, true, false)),
                ("good", go_fixture("nomod")),
            ]);
            assert_eq!(a.unreadable.len(), 1);
            assert_eq!(
                (a.unreadable[0].path.as_str(), a.unreadable[0].code),
                ("bad", code)
            );
            assert_eq!(a.packages, [go("stdlib", "1.19.8", "good")]);
        }
    }

    #[test]
    fn toolchain_versions_in_osv_spelling() {
        for (toolchain, want) in [
            ("go1.21.5", Some("1.21.5")),
            ("go1.22", Some("1.22.0")),
            ("go1", Some("1.0.0")),
            ("go1.21rc2", Some("1.21.0-rc.2")),
            ("go1.9beta1", Some("1.9.0-beta.1")),
            ("go1.21.5 X:boringcrypto", Some("1.21.5")),
            ("go1.20.4-bigcorp", Some("1.20.4")),
            ("devel go1.22-3e4b8a1 Mon Jan 1 00:00:00 2024 +0000", None),
            ("go1.2.3.4", None),
            ("gccgo", None),
        ] {
            assert_eq!(stdlib_version(toolchain).as_deref(), want, "{toolchain}");
        }
    }

    /// The packages read from the real binary match a real Go OSV record: the Go 1.19.8
    /// toolchain is affected by GO-2023-2102 (HTTP/2 rapid reset, fixed in 1.20.10) and not by
    /// GO-2022-0969 (fixed in 1.19.1).
    #[test]
    fn real_binary_matches_real_go_records() {
        let a = run(&[("usr/local/bin/hello", go_fixture("hello"))]);
        let inventory = Inventory {
            os: None,
            packages: a.packages,
            unreadable: Vec::new(),
        };
        let candidates: Vec<Candidate> = ["GO-2023-2102", "GO-2022-0969"]
            .iter()
            .map(|id| parse_record(&read(&format!("osv/records/go/{id}.json"))).unwrap())
            .flat_map(|record| Candidate::from_advisory(&record))
            .collect();
        let report = match_inventory(&inventory, &candidates);
        let matches: Vec<(&str, &str, Option<&str>)> = report
            .matches
            .iter()
            .map(|m| {
                (
                    m.advisory_id.as_str(),
                    m.package_name.as_str(),
                    m.fixed_version.as_deref(),
                )
            })
            .collect();
        assert_eq!(matches, [("GO-2023-2102", "stdlib", Some("1.20.10"))]);
        assert!(report.unknown.is_empty(), "{:?}", report.unknown);
    }
}
