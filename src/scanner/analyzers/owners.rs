//! Which OS package installed a file: a language package that an OS package installed belongs
//! to that OS package.
//!
//! The OS package analyzers fill a [`FileOwners`] from their databases' file lists (dpkg's
//! `info/<name>.list` and distroless `status.d/<name>.md5sums`, apk's `F:`/`R:` lines, the
//! rpmdb headers' `BASENAMES`/`DIRNAMES`/`DIRINDEXES`). After every analyzer ran,
//! [`assign`] gives each language package whose `file_path` is in those lists the owning
//! package's name: Debian's `python3-idna` installs
//! `usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO`, so the PyPI package `idna` read
//! from it is owned by `python3-idna`. Its fixes come with the OS package (Debian patches
//! `3.3-1+deb12u1` without changing the upstream version), so the matcher assesses it there and
//! not again in PyPI (see [`crate::scanner::advisories::matcher`]).
//!
//! Limits: paths are compared as written, without resolving symlinks (a file a package lists
//! under `/lib` and an image holds under `usr/lib` through a merged-`/usr` link is not found);
//! when two packages list the same path (a shared directory, a diversion), the first one read
//! is its owner. At most [`MAX_PATHS`] paths are kept (a large Fedora image lists about
//! 300 000): a hostile database of millions of short lines cannot make the map outgrow the
//! files it was read from by much; the paths past the limit are dropped, which the analyzer
//! reports as a warning ([`FileOwners::limit_warning`]).

use std::collections::HashMap;

use super::{AnalyzerWarning, normalize_path};
use crate::scanner::advisories::matcher::InventoryPackage;

/// How many paths a [`FileOwners`] keeps.
pub const MAX_PATHS: usize = 2_000_000;

/// Installed files (normalised paths), each with the name of the OS package that lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOwners {
    /// Package names, each once.
    names: Vec<String>,
    /// Path → index in `names`.
    paths: HashMap<String, usize>,
    limit: usize,
    /// Paths not kept because of `limit`.
    dropped: u64,
}

impl Default for FileOwners {
    fn default() -> Self {
        FileOwners::with_limit(MAX_PATHS)
    }
}

impl FileOwners {
    /// Keeps at most `limit` paths.
    pub fn with_limit(limit: usize) -> Self {
        FileOwners {
            names: Vec::new(),
            paths: HashMap::new(),
            limit,
            dropped: 0,
        }
    }

    /// A warning for `analyzer`'s database at `path` when paths were dropped at the limit.
    pub fn limit_warning(&self, analyzer: &'static str, path: &str) -> Option<AnalyzerWarning> {
        (self.dropped > 0).then(|| {
            AnalyzerWarning::new(
                analyzer,
                path,
                format!(
                    "more than {} installed files listed: {} paths not recorded, language \
                     packages read from them are not known to belong to an OS package",
                    self.limit, self.dropped
                ),
            )
        })
    }

    /// The index to pass to [`FileOwners::insert`] for a package named `name`.
    pub fn package(&mut self, name: &str) -> usize {
        match self.names.iter().rposition(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.names.len() - 1
            }
        }
    }

    /// Records that package `owner` (from [`FileOwners::package`]) installed `path`, written as
    /// the database writes it (`/usr/lib/x`, `usr/lib/x`, `./usr/lib/x`). A path that does not
    /// normalise (the root `/.` every `.list` starts with) is ignored; a path already listed
    /// keeps its first owner.
    pub fn insert(&mut self, path: &str, owner: usize) {
        if let Some(path) = normalize_path(path) {
            self.insert_normalised(path, owner);
        }
    }

    fn insert_normalised(&mut self, path: String, owner: usize) {
        if self.paths.len() < self.limit {
            self.paths.entry(path).or_insert(owner);
        } else if !self.paths.contains_key(&path) {
            self.dropped += 1;
        }
    }

    /// The package that installed `path` (normalised).
    pub fn owner(&self, path: &str) -> Option<&str> {
        self.paths
            .get(path)
            .and_then(|i| self.names.get(*i))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Adds another analyzer's files (the first owner of a path stays).
    pub fn extend(&mut self, other: FileOwners) {
        if self.names.is_empty() && self.limit == other.limit {
            // The usual case (one OS package database): no copy of a large map.
            *self = other;
            return;
        }
        let mut names = other.names;
        let renumbered: Vec<usize> = names
            .iter_mut()
            .map(|name| self.package(&std::mem::take(name)))
            .collect();
        for (path, i) in other.paths {
            if let Some(owner) = renumbered.get(i) {
                self.insert_normalised(path, *owner);
            }
        }
        self.dropped += other.dropped;
    }
}

/// Sets `owner` on every language package whose file an OS package installed: its `file_path`
/// (the outer file of a `!`-joined nested path), or the `*.dist-info` / `*.egg-info` directory
/// that holds it (an OS package may list the metadata directory alone).
pub fn assign(packages: &mut [InventoryPackage], owners: &FileOwners) {
    if owners.is_empty() {
        return;
    }
    for package in packages.iter_mut().filter(|p| !p.kind.is_os()) {
        let Some(path) = package.file_path.as_deref() else {
            continue;
        };
        let outer = path.split('!').next().unwrap_or(path);
        let metadata_dir = outer
            .rsplit_once('/')
            .map(|(dir, _)| dir)
            .filter(|dir| dir.ends_with(".dist-info") || dir.ends_with(".egg-info"));
        let owner = owners
            .owner(outer)
            .or_else(|| metadata_dir.and_then(|dir| owners.owner(dir)));
        if let Some(owner) = owner {
            package.owner = Some(owner.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::advisories::matcher::PackageKind;

    fn package(kind: PackageKind, name: &str, path: Option<&str>) -> InventoryPackage {
        InventoryPackage {
            kind,
            name: name.to_owned(),
            version: "1".to_owned(),
            source_name: None,
            source_version: None,
            layer_digest: None,
            file_path: path.map(str::to_owned),
            owner: None,
        }
    }

    #[test]
    fn paths_are_normalised_and_the_first_owner_stays() {
        let mut owners = FileOwners::default();
        let a = owners.package("a");
        let b = owners.package("b");
        assert_eq!(owners.package("a"), a);
        for (path, owner) in [
            ("/.", a),
            ("/usr/lib", a),
            ("/usr/lib/x", a),
            ("usr/lib/y", b),
            ("./usr/lib/z", b),
            ("/usr/lib", b),
            ("../etc/passwd", b),
        ] {
            owners.insert(path, owner);
        }
        assert_eq!(owners.len(), 4);
        assert_eq!(owners.owner("usr/lib"), Some("a"));
        assert_eq!(owners.owner("usr/lib/x"), Some("a"));
        assert_eq!(owners.owner("usr/lib/y"), Some("b"));
        assert_eq!(owners.owner("usr/lib/z"), Some("b"));
        assert_eq!(
            owners.owner("/usr/lib/x"),
            None,
            "lookups take normalised paths"
        );
        assert_eq!(owners.owner(""), None);

        let mut other = FileOwners::default();
        let c = other.package("c");
        let b2 = other.package("b");
        other.insert("usr/lib/x", c);
        other.insert("opt/c", c);
        other.insert("opt/b", b2);
        owners.extend(other);
        assert_eq!(owners.owner("usr/lib/x"), Some("a"));
        assert_eq!(owners.owner("opt/c"), Some("c"));
        assert_eq!(owners.owner("opt/b"), Some("b"));
        assert_eq!(owners.names, ["a", "b", "c"]);
        assert_eq!(owners.limit_warning("dpkg", "x"), None);
    }

    #[test]
    fn paths_past_the_limit_are_dropped_and_reported() {
        let mut owners = FileOwners::with_limit(2);
        let a = owners.package("a");
        for path in ["x", "y", "x", "z", "w"] {
            owners.insert(path, a);
        }
        assert_eq!(owners.len(), 2);
        assert_eq!(owners.owner("y"), Some("a"));
        assert_eq!(owners.owner("z"), None);
        let warning = owners.limit_warning("dpkg", "var/lib/dpkg/info").unwrap();
        assert_eq!(
            (warning.analyzer, warning.path.as_str()),
            ("dpkg", "var/lib/dpkg/info")
        );
        assert!(
            warning
                .message
                .starts_with("more than 2 installed files listed: 2 paths not recorded"),
            "{}",
            warning.message
        );
        // Merged into a set that is full too: the counts add up.
        let mut other = FileOwners::with_limit(2);
        let b = other.package("b");
        other.insert("x", b);
        other.insert("v", b);
        owners.extend(other);
        assert_eq!(owners.owner("x"), Some("a"));
        assert_eq!(owners.dropped, 3);
    }

    #[test]
    fn language_packages_get_the_owner_of_their_file() {
        let mut owners = FileOwners::default();
        let idna = owners.package("python3-idna");
        let six = owners.package("python3-six");
        let java = owners.package("libfoo-java");
        let os = owners.package("base-files");
        owners.insert(
            "/usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO",
            idna,
        );
        owners.insert("/usr/lib/python3/dist-packages/six-1.16.0.dist-info", six);
        owners.insert("/usr/share/java/foo.jar", java);
        owners.insert("/usr/lib/python3/dist-packages", os);
        owners.insert("/etc/os-release", os);
        let mut packages = vec![
            package(
                PackageKind::Python,
                "idna",
                Some("usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO"),
            ),
            package(
                PackageKind::Python,
                "six",
                Some("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"),
            ),
            package(
                PackageKind::Maven,
                "foo",
                Some("usr/share/java/foo.jar!META-INF/maven/x/foo/pom.properties"),
            ),
            // A shared directory owns nothing below it.
            package(
                PackageKind::Python,
                "pip-installed",
                Some("usr/lib/python3/dist-packages/pip_installed-1.0.dist-info/METADATA"),
            ),
            package(
                PackageKind::Python,
                "venv",
                Some("opt/venv/lib/python3.11/site-packages/idna-3.3.dist-info/METADATA"),
            ),
            package(PackageKind::Npm, "no-path", None),
            // OS packages are never owned.
            package(PackageKind::Dpkg, "base-files", Some("etc/os-release")),
        ];
        assign(&mut packages, &owners);
        let got: Vec<(&str, Option<&str>)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.owner.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("idna", Some("python3-idna")),
                ("six", Some("python3-six")),
                ("foo", Some("libfoo-java")),
                ("pip-installed", None),
                ("venv", None),
                ("no-path", None),
                ("base-files", None),
            ]
        );
    }
}
