//! The layout rules of docs/ARCHITECTURE.md, checked on the source: every import points down the
//! layers, no two files of `src/` import each other in a circle, `api/` never names diesel, and the
//! module docs cite documents that are in the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside the crate: `["store", "findings"]` for `src/store/findings.rs`.
type Module = Vec<String>;

/// Top-level modules in layer order: a module may import only from layers below its own.
/// `config`, `startup`, `telemetry`, `error` and `main` wire the layers together and are not checked.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("store", 1),
    ("scanner", 1),
    ("jobs", 2),
    ("api", 3),
];

struct Source {
    module: Module,
    path: PathBuf,
    /// The text without comments and without `#[cfg(test)] mod tests { … }` at the end.
    code: String,
    text: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    collect(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                module.clear();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = without_comments(text.split("\n#[cfg(test)]\nmod tests").next().unwrap());
            Source {
                module,
                path,
                code,
                text,
            }
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a file names through `crate::` and `super::`, resolved to module paths (with the
/// item names still attached; [`owner`] finds the module). `use a::{b, c::d}` gives `a::b` and
/// `a::c::d`.
fn named_paths(source: &Source) -> Vec<Module> {
    let code = &source.code;
    let mut found = Vec::new();
    for head in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(head) {
            let start = from + at;
            from = start + head.len();
            if code[..start].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let mut base: Module = if head == "crate::" {
                Vec::new()
            } else {
                // `super` of `a/b.rs` and of `a/b/mod.rs` is `a`.
                let mut parent = source.module.clone();
                parent.pop();
                parent
            };
            let rest = &code[from..];
            let mut segments = Vec::new();
            let mut cursor = rest;
            loop {
                let ident: String = cursor.chars().take_while(|c| is_ident(*c)).collect();
                if ident.is_empty() {
                    break;
                }
                cursor = &cursor[ident.len()..];
                if ident == "super" {
                    base.pop();
                } else {
                    segments.push(ident);
                }
                match cursor.strip_prefix("::") {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
            base.extend(segments);
            if let Some(group) = cursor.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let item = item.trim().split(" as ").next().unwrap_or("").trim();
                    if item.is_empty() || item == "self" || item.contains('{') {
                        continue;
                    }
                    let mut path = base.clone();
                    path.extend(item.split("::").map(|s| s.trim().to_owned()));
                    found.push(path);
                }
            }
            found.push(base);
        }
    }
    found
}

/// The module a path points into: its longest prefix that is a file of `src/`.
fn owner(path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

fn is_ancestor(a: &[String], b: &[String]) -> bool {
    a.len() < b.len() && b.starts_with(a)
}

/// File → files it imports, leaving out edges between a module and its ancestors (a `mod.rs`
/// declares and re-exports its children; a child naming its parent's items is no circle).
fn import_graph(sources: &[Source]) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    sources
        .iter()
        .map(|source| {
            let targets = named_paths(source)
                .iter()
                .filter_map(|path| owner(path, &modules))
                .filter(|target| {
                    *target != source.module
                        && !is_ancestor(target, &source.module)
                        && !is_ancestor(&source.module, target)
                })
                .collect();
            (source.module.clone(), targets)
        })
        .collect()
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("/")
    }
}

/// Groups of files that reach each other (Tarjan's strongly connected components of size > 1).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let Some((w, _)) = self.graph.get_key_value(w) else {
                    continue;
                };
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(name(w));
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

fn layer(module: &[String]) -> Option<u8> {
    let top = module.first()?;
    LAYERS.iter().find(|(m, _)| m == top).map(|(_, l)| *l)
}

#[test]
fn no_two_files_import_each_other_in_a_circle() {
    let graph = import_graph(&sources());
    assert!(
        graph.contains_key(&vec!["store".to_owned(), "findings".to_owned()]),
        "the walk found src/store/findings.rs"
    );
    let found = circles(&graph);
    assert!(found.is_empty(), "import circles in src/: {found:?}");
}

#[test]
fn every_import_points_down_the_layers() {
    let graph = import_graph(&sources());
    let mut upward = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            if let (Some(a), Some(b)) = (layer(from), layer(to))
                && from[0] != to[0]
                && b >= a
            {
                upward.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down: {upward:?}"
    );
    // The check sees real arrows: the API does import the store and the jobs.
    let api_to_jobs = graph
        .iter()
        .filter(|(from, _)| from.first().is_some_and(|m| m == "api"))
        .flat_map(|(_, to)| to)
        .any(|to| to.first().is_some_and(|m| m == "jobs"));
    assert!(api_to_jobs, "the graph holds the api → jobs arrows");
}

#[test]
fn the_http_layer_never_names_diesel() {
    let offenders: Vec<String> = sources()
        .iter()
        .filter(|s| s.module.first().is_some_and(|m| m == "api"))
        .filter(|s| s.code.contains("diesel"))
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "api/ files naming diesel: {offenders:?}"
    );
}

#[test]
fn module_docs_cite_only_documents_in_the_repository() {
    // Module docs (`//!`) only: one item doc is a published schema description (see domain/scan.rs).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(root.join("docs/ARCHITECTURE.md").is_file());
    let outside = ["DESIGN §", "DESIGN.md", "real-registry.md", "shared/docs"];
    let offenders: Vec<String> = sources()
        .iter()
        .filter(|s| {
            s.text
                .lines()
                .filter(|line| line.trim_start().starts_with("//!"))
                .any(|line| outside.iter().any(|o| line.contains(o)))
        })
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "files citing documents outside the repository: {offenders:?}"
    );
}
