//! RPM packages (Red Hat, AlmaLinux, Rocky, Fedora, Amazon Linux, SUSE, Azure Linux...) from
//! the SQLite rpmdb.
//!
//! Files: `usr/lib/sysimage/rpm/rpmdb.sqlite` (Fedora 36+, SUSE; `var/lib/rpm` is a symlink to
//! it there) or `var/lib/rpm/rpmdb.sqlite` (RHEL 9, Amazon Linux 2023, Azure Linux); the first
//! one present is read. Its `-wal` file is read too when the image has one (a database whose
//! last transactions were not checkpointed): without it those packages would be missing.
//!
//! The database bytes are written to a private temporary directory and opened there, read-only
//! and (without a WAL) `immutable=1`, so SQLite never writes beside the original and never
//! needs to. Each row of the `Packages` table is an RPM header blob ([`header`]); the package
//! is `NAME`, `[EPOCH:]VERSION-RELEASE` (the EVR rpm compares; the epoch is written whenever
//! the header has the tag, as `rpm -q --qf '%{EPOCH}:'` does), and its source RPM
//! `openssl-3.0.7-25.el9.src.rpm` gives `source_name = "openssl"`,
//! `source_version = "3.0.7-25.el9"` (a source RPM file name has no epoch; the matcher
//! compares the binary's EVR).
//!
//! Failures (the analysis fails, naming the file):
//! * A BerkeleyDB (`var/lib/rpm/Packages`: RHEL ≤ 8, CentOS, Amazon Linux 2) or NDB
//!   (`Packages.db`: SLE 15, openSUSE Leap) database without an `rpmdb.sqlite`: these formats
//!   are not supported, and an RPM image must never come out with an empty inventory. When an
//!   `rpmdb.sqlite` is present, legacy files beside it are ignored with a warning.
//! * A file that is not SQLite, a SQLite file without a `Packages` table (claircore's
//!   `no_packages.sqlite`: rpm would not open it either), an unreadable header.
//!
//! An rpmdb with a `Packages` table and no rows is an empty list: rpm itself reads it so.
//!
//! Each package's `file_path` is the database read. The headers' file lists
//! ([`header::Header::files`]) go to [`super::owners`]; a header whose file tags disagree keeps
//! its package and loses its list, with a warning.

pub mod header;
mod sqlite;

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, whole};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "rpm";

/// SQLite databases, in order of preference.
const SQLITE: [&str; 2] = [
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "var/lib/rpm/rpmdb.sqlite",
];
const WAL_SUFFIX: &str = "-wal";
/// Databases in formats that are detected, not read.
const LEGACY: [&str; 4] = [
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
];

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpmAnalyzer;

impl Analyzer for RpmAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn required(&self, path: &str) -> bool {
        if !(path.starts_with("var/lib/rpm/") || path.starts_with("usr/lib/sysimage/rpm/")) {
            return false;
        }
        SQLITE.contains(&path)
            || LEGACY.contains(&path)
            || path
                .strip_suffix(WAL_SUFFIX)
                .is_some_and(|db| SQLITE.contains(&db))
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        let legacy = LEGACY.iter().filter_map(|p| files.get(p).map(|f| (*p, f)));
        let Some((path, db)) = SQLITE.iter().find_map(|p| files.get(p).map(|f| (*p, f))) else {
            for (path, file) in legacy {
                if file.is_empty() {
                    analysis.warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        "empty legacy rpm database file: ignored",
                    ));
                    continue;
                }
                return Err(AnalyzerError::new(
                    NAME,
                    path,
                    format!(
                        "unsupported rpm database format ({})",
                        legacy_format(&whole(NAME, path, file)?)
                    ),
                ));
            }
            return Ok(analysis);
        };
        for (other, _) in legacy {
            analysis.warnings.push(AnalyzerWarning::new(
                NAME,
                other,
                format!("ignored: {path} is the rpm database"),
            ));
        }
        for other in SQLITE
            .iter()
            .filter(|p| **p != path && files.get(p).is_some())
        {
            analysis.warnings.push(AnalyzerWarning::new(
                NAME,
                *other,
                format!("ignored: {path} is the rpm database"),
            ));
        }
        let wal_path = format!("{path}{WAL_SUFFIX}");
        let wal = match files.get(&wal_path) {
            Some(file) if !file.is_empty() => Some(whole(NAME, &wal_path, file)?),
            _ => None,
        };
        let blobs = sqlite::header_blobs(&whole(NAME, path, db)?, wal.as_deref())
            .map_err(|reason| AnalyzerError::new(NAME, path, reason))?;
        for (hnum, blob) in blobs {
            let header = header::parse(&blob).map_err(|e| {
                AnalyzerError::new(NAME, path, format!("header {hnum} is corrupt: {e}"))
            })?;
            let files = header.files();
            let pkg = package(header)
                .map_err(|e| AnalyzerError::new(NAME, path, format!("header {hnum}: {e}")))?;
            match files {
                Ok(files) => {
                    let owner = analysis.file_owners.package(&pkg.name);
                    for file in &files {
                        analysis.file_owners.insert(file, owner);
                    }
                }
                Err(e) => analysis.warnings.push(AnalyzerWarning::new(
                    NAME,
                    path,
                    format!("header {hnum} ({}): no file list: {e}", pkg.name),
                )),
            }
            analysis.packages.push(InventoryPackage {
                layer_digest: Some(db.layer_digest.clone()),
                file_path: Some(path.to_owned()),
                ..pkg
            });
        }
        if let Some(warning) = analysis.file_owners.limit_warning(NAME, path) {
            analysis.warnings.push(warning);
        }
        Ok(analysis)
    }
}

/// What a legacy `Packages` / `Packages.db` file is, from its magic numbers.
fn legacy_format(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"RpmP") {
        return "NDB";
    }
    let magic = |at: usize| {
        bytes.get(at..at + 4).map(|b| {
            [
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            ]
        })
    };
    // Berkeley DB hash (0x061561), btree (0x053162) and queue (0x042253) at offset 12.
    match magic(12) {
        Some(m)
            if m.iter()
                .any(|m| matches!(m, 0x0006_1561 | 0x0005_3162 | 0x0004_2253)) =>
        {
            "BerkeleyDB"
        }
        _ => "unrecognised",
    }
}

/// The inventory entry for a header (layer digest left empty).
fn package(h: header::Header) -> Result<InventoryPackage, String> {
    let nonempty = |v: Option<String>, tag: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no {tag} tag"))
    };
    let name = nonempty(h.name, "NAME")?;
    let version = nonempty(h.version, "VERSION")?;
    let release = nonempty(h.release, "RELEASE")?;
    let evr = match h.epoch {
        Some(epoch) => format!("{epoch}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let (source_name, source_version) = match h
        .source_rpm
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "(none)")
    {
        None => (None, None),
        Some(srpm) => match split_srpm(srpm) {
            Some((n, v)) => (Some(n.to_owned()), Some(v.to_owned())),
            None => (Some(srpm.to_owned()), None),
        },
    };
    Ok(InventoryPackage {
        kind: PackageKind::Rpm,
        name,
        version: evr,
        source_name,
        source_version,
        layer_digest: None,
        file_path: None,
        owner: None,
    })
}

/// `openssl-3.0.7-25.el9.src.rpm` → (`openssl`, `3.0.7-25.el9`); `None` when it is not
/// `name-version-release.{src,nosrc}.rpm`.
fn split_srpm(srpm: &str) -> Option<(&str, &str)> {
    let nvr = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (nv, release) = nvr.rsplit_once('-')?;
    let (name, version) = nv.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name, &nvr[name.len() + 1..]))
}

#[cfg(test)]
mod tests;
