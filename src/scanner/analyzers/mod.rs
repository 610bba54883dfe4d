//! Package analyzers: turn the files an image contains into an [`Inventory`].
//!
//! The layer streamer (step 2 of the scan) asks every analyzer, for each tar entry, whether it
//! wants that path ([`Analyzer::required`], or [`required_by_any`]), keeps those files as they
//! are in the final image (after whiteouts) in a [`FileSet`], and hands the set to
//! [`analyze_all`], which runs every analyzer on it and merges the results.
//!
//! # Paths
//!
//! Paths are relative to the image root, `/`-separated, without a leading `/` or `./`, without
//! empty, `.` or `..` components, and without a trailing `/`: `var/lib/dpkg/status`.
//! [`normalize_path`] turns a tar entry name into that form.
//!
//! # Failures
//!
//! * A package database that cannot be read (a syntax error in `var/lib/dpkg/status`, a corrupt
//!   RPM header, a BerkeleyDB or NDB rpmdb, which are not supported) is an [`AnalyzerError`]
//!   naming the analyzer, the file and the reason. [`analyze_all`] still runs every analyzer, so
//!   that all errors are reported at once, and then fails with [`AnalysisFailed`]: a scan never
//!   ends with a silently empty or partial OS inventory.
//! * A single bad *entry* in an otherwise readable file (a dpkg stanza without `Version`, an apk
//!   record without `V:`, a `package.json` in `node_modules` that is not JSON, a Python
//!   `METADATA` without `Name`) is skipped with an [`AnalyzerWarning`], which [`analyze_all`]
//!   returns next to the inventory. This is what trivy, syft and osv-scalibr do with the same
//!   fixtures; the warnings keep it from being silent.
//!
//! # Cache key
//!
//! An inventory is rebuilt only when an analyzer's output could change: each analyzer has a
//! [`Analyzer::version`], and [`analyzer_ids`] / [`cache_key`] give the list to store with the
//! inventory.

mod apk;
mod dpkg;
mod elf;
mod gobinary;
mod java;
mod npm;
mod os_release;
mod owners;
mod python;
mod rpm;
mod rustaudit;

mod dotnet;
mod php;
mod ruby;
mod small_file;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::collections::HashSet;
use std::fmt;

use crate::scanner::advisories::ecosystem::OsRelease;
use crate::scanner::advisories::matcher::{Inventory, InventoryPackage, UnreadablePath};

pub use apk::ApkAnalyzer;
pub use dpkg::DpkgAnalyzer;
pub use gobinary::GoBinaryAnalyzer;
pub use java::JavaAnalyzer;
pub use npm::NpmAnalyzer;
pub use os_release::OsReleaseAnalyzer;
pub use owners::FileOwners;
pub use python::PythonAnalyzer;
pub use rpm::RpmAnalyzer;
pub use rustaudit::RustAuditAnalyzer;

pub use dotnet::DotnetAnalyzer;
pub use php::PhpAnalyzer;
pub use ruby::RubyAnalyzer;

pub use crate::scanner::files::{CollectedFile, FileSet, ReadSeek, normalize_path};

/// A package-database reader.
pub trait Analyzer: Send + Sync {
    /// Short stable name, e.g. `"dpkg"`.
    fn name(&self) -> &'static str;
    /// Bumped whenever the output for the same files could change (part of the inventory cache
    /// key).
    fn version(&self) -> u32;
    /// Whether the analyzer wants the file at this normalised path. Cheap: called for every tar
    /// entry of every layer.
    fn required(&self, path: &str) -> bool;
    /// Whether the analyzer wants a file it did not ask for by name, judged by its first bytes
    /// (at most [`HEAD_LEN`], fewer for a shorter file): executables are found by their ELF
    /// magic, wherever they are installed.
    fn wants_content(&self, _path: &str, _head: &[u8]) -> bool {
        false
    }
    /// Reads the files it asked for from `files` (which also holds other analyzers' files).
    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError>;
}

/// How many leading bytes of a file [`Analyzer::wants_content`] sees.
pub const HEAD_LEN: usize = 64;

/// What one analyzer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    pub os: Option<OsRelease>,
    pub packages: Vec<InventoryPackage>,
    /// Entries that were skipped (see the module docs); never the reason for a missing database.
    pub warnings: Vec<AnalyzerWarning>,
    /// Executables and archives the analyzer wanted but could not read (hostile, truncated,
    /// beyond a limit): the rest of the image is still inventoried, and these count against its
    /// coverage so an image is never Healthy because its content was invisible.
    pub unreadable: Vec<UnreadableFile>,
    /// The files the OS package database lists, with their packages: a language package read
    /// from one of them belongs to that package ([`owners`]).
    pub file_owners: FileOwners,
}

/// A file an analyzer wanted and could not read, with a stable code (`TooLarge`, `TooDeep`,
/// `Truncated`, `Malformed`, ...) and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableFile {
    pub analyzer: &'static str,
    pub path: String,
    pub code: &'static str,
    pub reason: String,
}

impl UnreadableFile {
    pub fn new(
        analyzer: &'static str,
        path: impl Into<String>,
        code: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        UnreadableFile {
            analyzer,
            path: path.into(),
            code,
            reason: reason.into(),
        }
    }
}

/// A package database that cannot be read: the analysis (and so the scan) fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{analyzer} analyzer: {path}: {reason}")]
pub struct AnalyzerError {
    pub analyzer: &'static str,
    /// The file (normalised path) that could not be read.
    pub path: String,
    pub reason: String,
}

impl AnalyzerError {
    pub fn new(analyzer: &'static str, path: impl Into<String>, reason: impl Into<String>) -> Self {
        AnalyzerError {
            analyzer,
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// One entry skipped by an analyzer that could otherwise read its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerWarning {
    pub analyzer: &'static str,
    pub path: String,
    pub message: String,
}

impl AnalyzerWarning {
    pub fn new(
        analyzer: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AnalyzerWarning {
            analyzer,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for AnalyzerWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} analyzer: {}: {}",
            self.analyzer, self.path, self.message
        )
    }
}

/// The analyzers Crowsnest runs, in the order their results are merged.
pub fn defaults() -> Vec<Box<dyn Analyzer>> {
    vec![
        Box::new(OsReleaseAnalyzer),
        Box::new(DpkgAnalyzer),
        Box::new(ApkAnalyzer),
        Box::new(RpmAnalyzer),
        Box::new(PythonAnalyzer),
        Box::new(NpmAnalyzer),
        Box::new(GoBinaryAnalyzer),
        Box::new(RustAuditAnalyzer),
        Box::new(JavaAnalyzer),
        Box::new(RubyAnalyzer),
        Box::new(PhpAnalyzer),
        Box::new(DotnetAnalyzer),
    ]
}

/// Whether any of `analyzers` wants the file at this normalised path.
pub fn required_by_any(analyzers: &[Box<dyn Analyzer>], path: &str) -> bool {
    analyzers.iter().any(|a| a.required(path))
}

/// Whether any of `analyzers` wants the file at this path for its first bytes.
pub fn wanted_by_content(analyzers: &[Box<dyn Analyzer>], path: &str, head: &[u8]) -> bool {
    analyzers.iter().any(|a| a.wants_content(path, head))
}

/// An analyzer's name and version: one part of an inventory's cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnalyzerId {
    pub name: &'static str,
    pub version: u32,
}

impl fmt::Display for AnalyzerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// The `(name, version)` of every analyzer, in their order.
pub fn analyzer_ids(analyzers: &[Box<dyn Analyzer>]) -> Vec<AnalyzerId> {
    analyzers
        .iter()
        .map(|a| AnalyzerId {
            name: a.name(),
            version: a.version(),
        })
        .collect()
}

/// A stable string for a set of analyzers (`apk@1,dpkg@1,...`, sorted by name): an inventory
/// built with a different string must be rebuilt.
pub fn cache_key(ids: &[AnalyzerId]) -> String {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.iter()
        .map(AnalyzerId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The merged result of every analyzer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisReport {
    /// The OS (from the first analyzer, in list order, that found one) and every package, in
    /// analyzer order, exact duplicates removed.
    pub inventory: Inventory,
    /// Every analyzer that ran (for the inventory's cache key).
    pub analyzers: Vec<AnalyzerId>,
    /// Skipped entries; to be logged and counted, not a failure.
    pub warnings: Vec<AnalyzerWarning>,
}

/// At least one analyzer could not read its package database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisFailed {
    /// Every failure, in analyzer order (never empty).
    pub errors: Vec<AnalyzerError>,
    /// Warnings of the analyzers that did succeed.
    pub warnings: Vec<AnalyzerWarning>,
}

impl fmt::Display for AnalysisFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("package analysis failed: ")?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AnalysisFailed {}

/// Runs every analyzer on `files` and merges the results. Fails when any analyzer fails (after
/// running all of them, so that every error is reported); see the module docs.
pub fn analyze_all(
    analyzers: &[Box<dyn Analyzer>],
    files: &FileSet,
) -> Result<AnalysisReport, AnalysisFailed> {
    let mut os: Option<OsRelease> = None;
    let mut packages: Vec<InventoryPackage> = Vec::new();
    let mut warnings = Vec::new();
    let mut unreadable = Vec::new();
    let mut errors = Vec::new();
    let mut file_owners = FileOwners::default();
    for analyzer in analyzers {
        match analyzer.analyze(files) {
            Ok(analysis) => {
                warnings.extend(analysis.warnings);
                file_owners.extend(analysis.file_owners);
                unreadable.extend(analysis.unreadable);
                if let Some(found) = analysis
                    .os
                    .and_then(|found| storable_os(found, analyzer.name(), &mut warnings))
                {
                    match &os {
                        None => os = Some(found),
                        Some(first) if *first != found => warnings.push(AnalyzerWarning::new(
                            analyzer.name(),
                            "",
                            format!(
                                "found OS {:?} {:?}, ignored: already identified as {:?} {:?}",
                                found.id, found.version_id, first.id, first.version_id
                            ),
                        )),
                        Some(_) => {}
                    }
                }
                packages.extend(
                    analysis
                        .packages
                        .into_iter()
                        .filter(|p| storable_package(p, analyzer.name(), &mut warnings)),
                );
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(AnalysisFailed { errors, warnings });
    }
    for package in &mut packages {
        physical_path(package, files);
    }
    owners::assign(&mut packages, &file_owners);
    Ok(AnalysisReport {
        inventory: Inventory {
            os,
            packages: dedup(packages),
            unreadable: unreadable
                .into_iter()
                .map(|u| UnreadablePath {
                    path: u.path,
                    analyzer: u.analyzer.to_owned(),
                    code: u.code.to_owned(),
                    reason: u.reason,
                })
                .collect(),
        },
        analyzers: analyzer_ids(analyzers),
        warnings,
    })
}

/// A NUL character cannot be stored in PostgreSQL's text (and never names a real package): a
/// package that holds one is skipped with a warning instead of failing the image's scan.
fn storable_package(
    package: &InventoryPackage,
    analyzer: &'static str,
    warnings: &mut Vec<AnalyzerWarning>,
) -> bool {
    let fields = [
        Some(&package.name),
        Some(&package.version),
        package.source_name.as_ref(),
        package.source_version.as_ref(),
        package.layer_digest.as_ref(),
    ];
    let storable = !fields.into_iter().flatten().any(|f| f.contains('\0'));
    if !storable {
        warnings.push(AnalyzerWarning::new(
            analyzer,
            "",
            format!(
                "skipped a package whose name or version holds a NUL character: {:?}",
                package.name
            ),
        ));
    }
    storable
}

/// An OS whose id or version holds a NUL is not identified; a NUL in its display name drops the
/// name only.
fn storable_os(
    mut os: OsRelease,
    analyzer: &'static str,
    warnings: &mut Vec<AnalyzerWarning>,
) -> Option<OsRelease> {
    let nul = |s: &String| s.contains('\0');
    if nul(&os.id) || os.version_id.as_ref().is_some_and(nul) || os.id_like.iter().any(nul) {
        warnings.push(AnalyzerWarning::new(
            analyzer,
            "",
            "ignored an OS release whose ID, VERSION_ID or ID_LIKE holds a NUL character",
        ));
        return None;
    }
    if os.pretty_name.as_ref().is_some_and(nul) {
        os.pretty_name = None;
    }
    Some(os)
}

/// A package read through a symlink to a file that was read under its own path too names that
/// file, so the two copies are one (`dedup`): Debian's `usr/share/java/x.jar` links to the jar in
/// `usr/share/maven-repo/`.
fn physical_path(package: &mut InventoryPackage, files: &FileSet) {
    let Some(path) = &package.file_path else {
        return;
    };
    let (outer, nested) = match path.split_once('!') {
        Some((outer, nested)) => (outer, Some(nested)),
        None => (path.as_str(), None),
    };
    let Some(target) = files.get(outer).and_then(|f| f.alias_of.as_deref()) else {
        return;
    };
    package.file_path = Some(match nested {
        Some(nested) => format!("{target}!{nested}"),
        None => target.to_owned(),
    });
}

/// Removes exact duplicates (same kind, name, version, source, layer, file and owner), keeping the
/// first. The same package in two files (a Go toolchain in two binaries, two Composer trees) is
/// kept twice: each file is something to rebuild.
fn dedup(packages: Vec<InventoryPackage>) -> Vec<InventoryPackage> {
    let mut out: Vec<InventoryPackage> = Vec::with_capacity(packages.len());
    let mut seen = HashSet::with_capacity(packages.len());
    for p in packages {
        let key = (
            p.kind,
            p.name.clone(),
            p.version.clone(),
            p.source_name.clone(),
            p.source_version.clone(),
            p.layer_digest.clone(),
            p.file_path.clone(),
            p.owner.clone(),
        );
        if seen.insert(key) {
            out.push(p);
        }
    }
    out
}

/// A whole file in memory, for an analyzer that parses it as a whole (a package database); a file
/// that cannot be read so is that analyzer's error.
fn whole<'f>(
    analyzer: &'static str,
    path: &str,
    file: &'f CollectedFile,
) -> Result<std::borrow::Cow<'f, [u8]>, AnalyzerError> {
    file.bytes()
        .map_err(|e| AnalyzerError::new(analyzer, path, format!("cannot be read: {e}")))
}

/// Text of a file that should be UTF-8; invalid sequences (a Latin-1 maintainer name in an old
/// dpkg database) become U+FFFD rather than failing the whole file.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes)
}
