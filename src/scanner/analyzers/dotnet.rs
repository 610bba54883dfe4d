//! NuGet packages of .NET applications.
//!
//! Files: `<app>.deps.json`, which `dotnet build` / `dotnet publish` write next to an
//! application's (or library's) assemblies, anywhere in the image. Its `libraries` object has
//! one entry per dependency, keyed `<name>/<version>`; the entries of `"type": "package"` are
//! NuGet packages. `project` (the application itself and projects it references),
//! `referenceassembly`, `runtimepack` and other types are not NuGet packages and are left out,
//! as syft does. The key is split at its last `/` (NuGet ids and versions hold none). Packages
//! are reported in key order.
//!
//! A package entry whose key has no `/`, an empty name or an empty version is skipped with a
//! warning. A file that is larger than 16 MiB, not JSON, nested too deep where it is read, or
//! without a `libraries` object of objects is reported as unreadable ([`super::small_file`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::small_file::{parse_json, read_capped};
use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "dotnet";
const SUFFIX: &str = ".deps.json";
const MAX_DEPS_JSON: u64 = 16 * 1024 * 1024;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DotnetAnalyzer;

/// The part of a `.deps.json` read; `runtimeTarget`, `targets` and the rest are not.
#[derive(Debug, Deserialize)]
struct DepsJson {
    libraries: BTreeMap<String, Library>,
}

#[derive(Debug, Deserialize)]
struct Library {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Analyzer for DotnetAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, path: &str) -> bool {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.len() > SUFFIX.len() && file.ends_with(SUFFIX)
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| self.required(p)) {
            let deps = match read_capped(NAME, path, file, MAX_DEPS_JSON)
                .and_then(|bytes| parse_json::<DepsJson>(NAME, path, &bytes))
            {
                Ok(deps) => deps,
                Err(unreadable) => {
                    analysis.unreadable.push(unreadable);
                    continue;
                }
            };
            for (key, library) in deps.libraries {
                if library.kind.as_deref() != Some("package") {
                    continue;
                }
                match key.rsplit_once('/') {
                    Some((name, version)) if !name.is_empty() && !version.is_empty() => {
                        analysis.packages.push(InventoryPackage::language(
                            PackageKind::NuGet,
                            name,
                            version,
                            path,
                            &file.layer_digest,
                        ))
                    }
                    _ => analysis.warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        format!("library {key:?} is not `<name>/<version>`: skipped"),
                    )),
                }
            }
        }
        Ok(analysis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::CollectedFile;
    use crate::scanner::analyzers::testutil::{crate_fixture, set};

    fn run(files: &FileSet) -> Analysis {
        DotnetAnalyzer.analyze(files).unwrap()
    }

    #[test]
    fn required_truth_table() {
        for (path, want) in [
            ("app/MyApp.deps.json", true),
            ("MyApp.deps.json", true),
            (
                "usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.0/Microsoft.NETCore.App.deps.json",
                true,
            ),
            ("app/.deps.json", false),
            ("app/MyApp.deps.json.bak", false),
            ("app/MyApp.runtimeconfig.json", false),
            ("app/deps.json", false),
            ("", false),
        ] {
            assert_eq!(DotnetAnalyzer.required(path), want, "{path}");
        }
    }

    /// syft's dotnet cataloger fixtures (tests/fixtures/syft/PROVENANCE.md). The lists are the
    /// `libraries` keys of `"type": "package"` read from the files, sorted by key (`.` before
    /// `/`); `TestLibrary`
    /// and `TestCommon` (project), `MyApp` (project) and the two
    /// `Microsoft.AspNetCore.DataProtection*` (referenceassembly) are left out.
    #[test]
    fn syft_deps_json() {
        let mut files = FileSet::new();
        for (rel, path) in [
            ("syft/dotnet/MyApp.deps.json", "app/MyApp.deps.json"),
            (
                "syft/dotnet/TestLibrary.deps.json",
                "srv/lib/TestLibrary.deps.json",
            ),
        ] {
            let bytes = std::fs::read(crate_fixture(rel)).unwrap();
            files.insert(path, CollectedFile::new(bytes, "sha256:l2"));
        }
        let a = run(&files);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert!(a.unreadable.is_empty(), "{:?}", a.unreadable);
        let got: Vec<(&str, &str, PackageKind, &str)> = a
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.kind,
                    p.file_path.as_deref().unwrap(),
                )
            })
            .collect();
        let n = PackageKind::NuGet;
        let lib = "srv/lib/TestLibrary.deps.json";
        assert_eq!(
            got,
            [
                ("Newtonsoft.Json", "13.0.3", n, "app/MyApp.deps.json"),
                ("AWSSDK.Core", "3.7.10.6", n, lib),
                (
                    "Microsoft.Extensions.DependencyInjection.Abstractions",
                    "6.0.0",
                    n,
                    lib
                ),
                ("Microsoft.Extensions.DependencyInjection", "6.0.0", n, lib),
                ("Microsoft.Extensions.Logging.Abstractions", "6.0.0", n, lib),
                ("Microsoft.Extensions.Logging", "6.0.0", n, lib),
                ("Microsoft.Extensions.Options", "6.0.0", n, lib),
                ("Microsoft.Extensions.Primitives", "6.0.0", n, lib),
                ("Newtonsoft.Json", "13.0.1", n, lib),
                ("Serilog.Sinks.Console", "4.0.1", n, lib),
                ("Serilog", "2.10.0", n, lib),
                ("System.Diagnostics.DiagnosticSource", "6.0.0", n, lib),
                ("System.Runtime.CompilerServices.Unsafe", "6.0.0", n, lib),
            ]
        );
        assert!(
            a.packages
                .iter()
                .all(|p| p.layer_digest.as_deref() == Some("sha256:l2") && p.owner.is_none())
        );
    }

    #[test]
    fn bad_keys_are_warnings() {
        let a = run(&set(&[(
            "app/A.deps.json",
            r#"{"libraries":{"NoSlash":{"type":"package"},"/1.0":{"type":"package"},
                "X/":{"type":"package"},"Ok/1.0":{"type":"package","sha512":""},
                "Proj/1.0":{"type":"project"},"Untyped/1.0":{}}}"#,
        )]));
        let got: Vec<(&str, &str)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(got, [("Ok", "1.0")]);
        let messages: Vec<&str> = a.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "library \"/1.0\" is not `<name>/<version>`: skipped",
                "library \"NoSlash\" is not `<name>/<version>`: skipped",
                "library \"X/\" is not `<name>/<version>`: skipped",
            ]
        );
    }

    #[test]
    fn unreadable_files() {
        let bomb = "[".repeat(10_000) + &"]".repeat(10_000);
        // serde_json skips an ignored value without recursing: no limit, no stack overflow.
        let bomb_in_targets =
            format!("{{\"targets\":{bomb},\"libraries\":{{\"A/1\":{{\"type\":\"package\"}}}}}}");
        let mut files = set(&[
            ("a/A.deps.json", "{not json"),
            ("b/B.deps.json", r#"{"targets":{}}"#),
            ("c/C.deps.json", r#"{"libraries":{"X/1":{"type":1}}}"#),
            ("d/D.deps.json", &bomb),
            ("e/E.deps.json", &bomb_in_targets),
        ]);
        let mut big = br#"{"libraries":{}}"#.to_vec();
        big.resize(16 * 1024 * 1024 + 1, b' ');
        files.insert("f/F.deps.json", CollectedFile::new(big, "sha256:l"));
        let a = run(&files);
        let got: Vec<(&str, &str)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.file_path.as_deref().unwrap()))
            .collect();
        assert_eq!(got, [("A", "e/E.deps.json")]);
        let got: Vec<(&str, &str)> = a
            .unreadable
            .iter()
            .map(|u| (u.path.as_str(), u.code))
            .collect();
        assert_eq!(
            got,
            [
                ("a/A.deps.json", "Malformed"),
                ("b/B.deps.json", "Malformed"),
                ("c/C.deps.json", "Malformed"),
                ("d/D.deps.json", "Malformed"),
                ("f/F.deps.json", "TooLarge"),
            ]
        );
    }
}
