//! Test-only helpers: fixture readers, a tally of what ran and what was
//! skipped, JSON accessors, and a transitivity check for proptest.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

use proptest::test_runner::TestCaseError;

use super::{VersionError, fixture};

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Counts what a fixture test ran and skipped, per category, and fails when
/// nothing ran.
pub struct Tally {
    name: String,
    ran: BTreeMap<String, usize>,
    skipped: BTreeMap<String, usize>,
}

impl Tally {
    pub fn new(name: &str) -> Self {
        Tally {
            name: name.to_owned(),
            ran: BTreeMap::new(),
            skipped: BTreeMap::new(),
        }
    }

    pub fn ran(&mut self, category: &str) {
        *self.ran.entry(category.to_owned()).or_default() += 1;
    }

    pub fn skipped(&mut self, reason: &str) {
        *self.skipped.entry(reason.to_owned()).or_default() += 1;
    }

    pub fn skipped_n(&mut self, reason: &str, n: usize) {
        *self.skipped.entry(reason.to_owned()).or_default() += n;
    }

    pub fn count(&self, category: &str) -> usize {
        self.ran.get(category).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.ran.values().sum()
    }

    pub fn finish(self) {
        let total = self.total();
        let skipped: usize = self.skipped.values().sum();
        eprintln!(
            "VECTORS {}: ran {total} {:?}; skipped {skipped} {:?}",
            self.name, self.ran, self.skipped
        );
        assert!(total > 0, "{}: no vector ran", self.name);
    }
}

/// One `a op b` line of an osv-scalibr `semantic/testdata` file.
pub struct ScalibrLine {
    pub lineno: usize,
    pub line: String,
    pub a: String,
    pub op: String,
    pub b: String,
}

/// Reads an osv-scalibr comparator fixture exactly as its
/// `runAgainstEcosystemFixture` does: empty lines and lines starting with
/// `"# "` or `"// "` are skipped, every other line splits on single spaces
/// into exactly `a`, one of `< = >`, `b`.
pub fn scalibr_lines(rel: &str) -> Vec<ScalibrLine> {
    let text = read(&fixture(rel));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with("# ") || line.starts_with("// ") {
            continue;
        }
        let pieces: Vec<&str> = line.split(' ').collect();
        let [a, op, b] = pieces.as_slice() else {
            panic!("{rel}:{}: expected `a op b`, got {line:?}", i + 1);
        };
        assert!(
            matches!(*op, "<" | "=" | ">"),
            "{rel}:{}: unknown comparator in {line:?}",
            i + 1
        );
        out.push(ScalibrLine {
            lineno: i + 1,
            line: line.to_owned(),
            a: (*a).to_owned(),
            op: (*op).to_owned(),
            b: (*b).to_owned(),
        });
    }
    assert!(!out.is_empty(), "{rel}: no vectors");
    out
}

pub fn op_ordering(op: &str) -> Ordering {
    match op {
        "<" => Ordering::Less,
        "=" | "==" => Ordering::Equal,
        ">" => Ordering::Greater,
        _ => panic!("unknown comparator {op:?}"),
    }
}

type Cmp = fn(&str, &str) -> Result<Ordering, VersionError>;

/// Checks `a op b` and the reverse for every line; reports all failures.
pub fn run_scalibr_file(rel: &str, cmp: Cmp) -> Tally {
    run_scalibr_file_skipping(rel, cmp, |_| None)
}

/// As [`run_scalibr_file`], except for lines `skip` gives a reason for.
pub fn run_scalibr_file_skipping(
    rel: &str,
    cmp: Cmp,
    mut skip: impl FnMut(&ScalibrLine) -> Option<&'static str>,
) -> Tally {
    let mut t = Tally::new(rel);
    let mut failures = Vec::new();
    for l in scalibr_lines(rel) {
        if let Some(reason) = skip(&l) {
            t.skipped(reason);
            continue;
        }
        let want = op_ordering(&l.op);
        let got = (cmp(&l.a, &l.b), cmp(&l.b, &l.a));
        if got != (Ok(want), Ok(want.reverse())) {
            failures.push(format!("{}: {:?} -> {got:?}", l.lineno, l.line));
        } else {
            t.ran("ordering");
        }
    }
    assert_failures(rel, &failures);
    t
}

pub fn assert_failures(name: &str, failures: &[String]) {
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(40).collect();
        panic!("{name}: {} failures:\n{shown:#?}", failures.len());
    }
}

/// A plain list: one version per line; blank lines and `#` comment lines are
/// skipped.
pub fn plain_list(rel: &str) -> Vec<String> {
    let text = read(&fixture(rel));
    let out: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert!(!out.is_empty(), "{rel}: empty");
    out
}

/// Reads a Go fuzz corpus file (`go test fuzz v1` then one `string("...")`
/// per argument).
pub fn go_fuzz_strings(rel: &str) -> Vec<String> {
    let text = read(&fixture(rel));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("go test fuzz v1"), "{rel}");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let inner = l
                .strip_prefix("string(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{rel}: unsupported corpus line {l:?}"));
            serde_json::from_str::<String>(inner)
                .unwrap_or_else(|e| panic!("{rel}: not a string literal {inner:?}: {e}"))
        })
        .collect()
}

/// If `a <= b` and `b <= c` then `a <= c` (strictly when either step is), and
/// likewise for `>=`. Pairs that do not parse are not this property's concern.
pub fn check_transitive(cmp: Cmp, a: &str, b: &str, c: &str) -> Result<(), TestCaseError> {
    let (Ok(ab), Ok(bc), Ok(ac)) = (cmp(a, b), cmp(b, c), cmp(a, c)) else {
        return Err(TestCaseError::reject("unparseable"));
    };
    for dir in [Ordering::Less, Ordering::Greater] {
        let step = |o: Ordering| o == dir || o == Ordering::Equal;
        if step(ab) && step(bc) {
            let want = if ab == dir || bc == dir {
                dir
            } else {
                Ordering::Equal
            };
            if ac != want {
                return Err(TestCaseError::fail(format!(
                    "{a:?} {ab:?} {b:?} {bc:?} {c:?} but {a:?} {ac:?} {c:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The fixtures' JSON, read with serde_json; panicking accessors keep the tests short.
pub use serde_json::Value as Json;

pub trait JsonExt {
    fn at(&self, key: &str) -> &Json;
    fn arr(&self) -> &[Json];
    fn str(&self) -> &str;
    /// A number as its decimal text (the fixtures' numbers all fit in u64).
    fn num(&self) -> String;
}

impl JsonExt for Json {
    fn at(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("missing key {key:?} in {self:?}"))
    }

    fn arr(&self) -> &[Json] {
        self.as_array()
            .map(Vec::as_slice)
            .unwrap_or_else(|| panic!("not an array: {self:?}"))
    }

    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self:?}"))
    }

    fn num(&self) -> String {
        match self {
            Json::Number(n) => n.to_string(),
            other => panic!("not a number: {other:?}"),
        }
    }
}

pub fn read_json(rel: &str) -> Json {
    serde_json::from_str(&read(&fixture(rel))).unwrap_or_else(|e| panic!("{rel}: {e}"))
}
