//! Maven packages inside Java archives.
//!
//! Files: by name, anywhere in the image: `*.jar`, `*.war`, `*.ear`, and Jenkins plugins
//! (`*.jpi`, `*.hpi`), read as zip archives through [`CollectedFile::open`].
//!
//! Inside each archive, every `META-INF/maven/<group>/<artifact>/pom.properties` is one
//! [`PackageKind::Maven`] package `group:artifact` at the version written there: a shaded jar
//! holds one for each library it carries, and all are reported. Only an archive without any
//! `pom.properties` falls back to `META-INF/MANIFEST.MF`, and only when the manifest names a
//! Maven identity reliably ([`metadata::manifest_identity`] gives the rule). A group id is never
//! guessed from a file name. An archive with neither gives an [`AnalyzerWarning`] saying its
//! identity is unknown; it does **not** count as unreadable: it was read in full, its nested
//! archives were inventoried, and most such jars are an application's own classes (Gradle
//! writes no `pom.properties`), which no advisory names.
//!
//! Archives inside archives (`BOOT-INF/lib/*.jar` of a Spring Boot jar, `WEB-INF/lib/*.jar` of
//! a war, `lib/*.jar` and `*.war` of an ear, any entry with one of the names above) are read
//! the same way; their packages' `file_path` joins the paths with `!`:
//! `app/app.jar!BOOT-INF/lib/x.jar`.
//!
//! Limits (an archive is untrusted input; `Limits::DEFAULT`):
//! * nesting: 4 archives below the image's file (a jar holding itself ends there);
//! * entries: 100 000 in one archive's central directory;
//! * a nested archive: 64 MiB inflated, checked against the size its header declares before
//!   inflating and against the bytes really produced while inflating (a lying header stops
//!   there), and a compression ratio of at most 100:1 once over a MiB. It is spooled to memory
//!   up to 8 MiB and to a temporary file beyond, so at most 4 × 8 MiB = 32 MiB of nested
//!   archives are held in memory at once (one per nesting level), plus a 64 KiB copy buffer
//!   and the inflater's window per level;
//! * `pom.properties` and `MANIFEST.MF`: 64 KiB each;
//! * one image file, all nesting levels together: 1 GiB inflated and 10 000 packages.
//!
//! An archive that cannot be read is an [`UnreadableFile`] (never a failed scan) with a stable
//! code: `Truncated` (it starts as a zip but its central directory is missing, or its data ends
//! early), `TooLarge` (a limit above), `TooDeep` (nesting), `Malformed` (not a zip, a corrupt
//! directory, an entry whose data does not match its header), `Unsupported` (a compression
//! method or encryption the reader lacks). A nested archive that cannot be read is reported
//! under its `!` path and the rest of its parent is still read; a limit on the whole image file
//! stops that file, keeping what was found. A single unreadable `pom.properties` or manifest is
//! a warning.

mod metadata;
#[cfg(test)]
mod tests;
mod walk;

use super::{Analysis, Analyzer, AnalyzerError, CollectedFile, FileSet, UnreadableFile};
use walk::{Stop, Walk};

const NAME: &str = "java";

/// File name endings of the archives read (compared ignoring ASCII case).
const ARCHIVE_SUFFIXES: [&str; 5] = [".jar", ".war", ".ear", ".jpi", ".hpi"];

const MIB: u64 = 1024 * 1024;

/// A nested archive up to this size is held in memory while it is read, a bigger one in a
/// temporary file.
const SPOOL_IN_MEMORY: usize = 8 * 1024 * 1024;

/// How much of an untrusted archive is read (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Archives nested below the image's file.
    depth: usize,
    /// Entries in one archive's central directory.
    entries: usize,
    /// Inflated size of one nested archive.
    nested_bytes: u64,
    /// Uncompressed to compressed size of a nested archive bigger than a MiB.
    ratio: u64,
    /// One `pom.properties` or `MANIFEST.MF`.
    metadata_bytes: u64,
    /// Bytes inflated for one image file, all nesting levels together.
    inflated_bytes: u64,
    /// Packages found in one image file, all nesting levels together.
    packages: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        // Spring Boot needs 1, a war in an ear 2.
        depth: 4,
        // The largest real jars hold some tens of thousands.
        entries: 100_000,
        nested_bytes: 64 * MIB,
        // Jars are already compressed (Spring Boot even stores them): a high ratio is a bomb.
        ratio: 100,
        metadata_bytes: 64 * 1024,
        inflated_bytes: 1024 * MIB,
        packages: 10_000,
    };
}

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct JavaAnalyzer;

impl Analyzer for JavaAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, path: &str) -> bool {
        is_archive_name(path)
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| self.required(p)) {
            read_image_file(path, file, Limits::DEFAULT, &mut analysis)?;
        }
        Ok(analysis)
    }
}

fn is_archive_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    ARCHIVE_SUFFIXES.iter().any(|suffix| {
        name.len() > suffix.len()
            && name
                .get(name.len() - suffix.len()..)
                .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
    })
}

/// Reads one image file into `analysis`; an archive it cannot read is an [`UnreadableFile`].
/// Fails only when the scanner's own storage does.
fn read_image_file(
    path: &str,
    file: &CollectedFile,
    limits: Limits,
    analysis: &mut Analysis,
) -> Result<(), AnalyzerError> {
    // The collected file could not be opened: the scanner's own storage failed, not the image.
    let mut reader = file.open().map_err(|e| {
        AnalyzerError::new(NAME, path, format!("cannot open the collected file: {e}"))
    })?;
    let outcome = Walk::new(limits, &file.layer_digest, analysis).archive(&mut *reader, path, 0);
    match outcome {
        Ok(()) => Ok(()),
        Err(Stop::Archive { code, reason } | Stop::File { code, reason }) => {
            analysis
                .unreadable
                .push(UnreadableFile::new(NAME, path, code, reason));
            Ok(())
        }
        Err(Stop::Environment(reason)) => Err(AnalyzerError::new(NAME, path, reason)),
    }
}
