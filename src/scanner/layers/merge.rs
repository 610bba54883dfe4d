//! [`merge`]: apply the layers bottom to top and build the analyzers' file set.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::scanner::files::{CollectedFile, Content, FileSet};

use super::paths;
use super::{LayerContent, LinkKind};

/// Symlinks followed while resolving one path (Linux's MAXSYMLINKS).
const MAX_HOPS: u32 = 40;

#[derive(Clone, Copy)]
enum Kind<'a> {
    File(&'a Content),
    Symlink(&'a str),
    Dir,
    /// A hardlink whose target was not kept: it hides lower entries but has no content.
    Dangling,
}

#[derive(Clone, Copy)]
struct Node<'a> {
    kind: Kind<'a>,
    /// Index of the layer that wrote the path.
    layer: usize,
    /// [`paths::fingerprint`] of the path, to match [`LayerContent::other_paths`].
    fingerprint: u64,
}

impl<'a> Node<'a> {
    fn new(path: &str, kind: Kind<'a>, layer: usize) -> Self {
        Node {
            kind,
            layer,
            fingerprint: paths::fingerprint(path),
        }
    }
}

type State<'a> = BTreeMap<&'a str, Node<'a>>;

/// Applies `layers` (bottom first) and returns the required files of the final image.
///
/// Per layer, first against the lower layers only: opaque directories hide everything below
/// them, whiteouts hide the path and everything below it, every non-directory entry replaces the
/// lower path and everything below it, a directory replaces a lower non-directory. Then the
/// layer's own entries are added, and its hardlinks are resolved against the state at that point.
/// At the end a required path that is a kept file is taken as is; a required path that is a
/// symlink, or lies under a symlinked directory, is resolved (see the module docs) and gets the
/// content of the file it leads to. `layer_digest` is the digest of the layer that wrote the file
/// (for a hardlink, the layer of the hardlink).
pub fn merge(layers: &[LayerContent], required: &dyn Fn(&str) -> bool) -> FileSet {
    let mut state: State<'_> = BTreeMap::new();

    for (index, layer) in layers.iter().enumerate() {
        hide_lower(&mut state, layer);

        for dir in &layer.dirs {
            state
                .entry(dir.as_str())
                .or_insert_with(|| Node::new(dir, Kind::Dir, index));
        }
        for (path, content) in &layer.files {
            state.insert(path, Node::new(path, Kind::File(content), index));
        }
        let mut hardlinks = Vec::new();
        for (path, target, kind) in &layer.links {
            match kind {
                LinkKind::Symlink => {
                    state.insert(path, Node::new(path, Kind::Symlink(target), index));
                }
                LinkKind::Hardlink => hardlinks.push((path.as_str(), target.as_str())),
            }
        }
        resolve_hardlinks(&mut state, hardlinks, index);
    }

    collect(&state, layers, required)
}

/// Removes what `layer` hides from the lower layers.
fn hide_lower(state: &mut State<'_>, layer: &LayerContent) {
    for dir in &layer.opaque_dirs {
        remove_below(state, dir);
    }
    for path in &layer.whiteouts {
        remove_tree(state, path);
    }
    for (path, _) in &layer.files {
        remove_tree(state, path);
    }
    for (path, _, _) in &layer.links {
        remove_tree(state, path);
    }
    if !layer.other_paths.is_empty() {
        let replaced: Vec<&str> = state
            .iter()
            .filter(|(_, node)| layer.other_paths.binary_search(&node.fingerprint).is_ok())
            .map(|(path, _)| *path)
            .collect();
        for path in replaced {
            remove_tree(state, path);
        }
    }
    for dir in &layer.dirs {
        if state
            .get(dir.as_str())
            .is_some_and(|node| !matches!(node.kind, Kind::Dir))
        {
            state.remove(dir.as_str());
        }
    }
}

/// Removes `path` and everything below it.
fn remove_tree(state: &mut State<'_>, path: &str) {
    state.remove(path);
    remove_below(state, path);
}

/// Removes everything strictly below `dir` (`""` is the root: everything).
fn remove_below(state: &mut State<'_>, dir: &str) {
    if dir.is_empty() {
        state.clear();
        return;
    }
    let low = format!("{dir}/");
    let high = format!("{dir}0"); // '0' is the byte after '/'
    let doomed: Vec<&str> = state
        .range::<str, _>((
            Bound::Included(low.as_str()),
            Bound::Excluded(high.as_str()),
        ))
        .map(|(path, _)| *path)
        .collect();
    for path in doomed {
        state.remove(path);
    }
}

/// Hardlinks point at a member of their own layer or a lower one, by exact path. A few passes
/// resolve links to links; what stays unresolved is dangling.
fn resolve_hardlinks<'a>(
    state: &mut State<'a>,
    mut pending: Vec<(&'a str, &'a str)>,
    layer: usize,
) {
    loop {
        let before = pending.len();
        let mut still = Vec::new();
        for (path, target) in pending {
            match state.get(target).map(|node| node.kind) {
                Some(kind @ (Kind::File(_) | Kind::Symlink(_) | Kind::Dangling)) => {
                    state.insert(path, Node::new(path, kind, layer));
                }
                _ => still.push((path, target)),
            }
        }
        pending = still;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    for (path, _) in pending {
        state.insert(path, Node::new(path, Kind::Dangling, layer));
    }
}

/// Follows symlinks in every component of `path` (the last one too) within the image root.
/// `None` for a loop (more than [`MAX_HOPS`] links) or a `..` that climbs above the root.
fn resolve(state: &State<'_>, path: &str) -> Option<String> {
    let mut pending: Vec<&str> = path.split('/').rev().collect();
    let mut current: Vec<&str> = Vec::new();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component {
            "" | "." => continue,
            ".." => {
                current.pop()?;
                continue;
            }
            name => current.push(name),
        }
        let joined = current.join("/");
        if let Some(Node {
            kind: Kind::Symlink(target),
            ..
        }) = state.get(joined.as_str())
        {
            hops += 1;
            if hops > MAX_HOPS || target.is_empty() {
                return None;
            }
            current.pop();
            if target.starts_with('/') {
                current.clear();
            }
            pending.extend(target.split('/').rev());
        }
    }
    Some(current.join("/"))
}

fn collect(state: &State<'_>, layers: &[LayerContent], required: &dyn Fn(&str) -> bool) -> FileSet {
    let files: BTreeMap<&str, (&Content, usize)> = state
        .iter()
        .filter_map(|(path, node)| match node.kind {
            Kind::File(content) => Some((*path, (content, node.layer))),
            _ => None,
        })
        .collect();
    let collected = |content: &Content, layer: usize| {
        CollectedFile::with_content(content.clone(), layers[layer].digest.clone())
    };

    let mut out = FileSet::new();
    let mut physical: HashSet<&str> = HashSet::new();
    for (path, (bytes, layer)) in &files {
        // A file kept for its first bytes is taken under its own path only.
        if required(path) || layers[*layer].kept_by_content.contains(*path) {
            out.insert(*path, collected(bytes, *layer));
            physical.insert(path);
        }
    }

    // Required paths reached through symlinks: the link itself (always: the analyzer named that
    // path), or a path below a symlinked directory — only when the file is not required under its
    // own path already, so that merged /usr (`lib -> usr/lib`) or pnpm's linked node_modules do
    // not report every file twice. Each candidate is checked by resolving it in full.
    let mut tried: HashSet<String> = HashSet::new();
    for (link, node) in state {
        if !matches!(node.kind, Kind::Symlink(_)) {
            continue;
        }
        let Some(target) = resolve(state, link) else {
            continue;
        };
        if let Some((bytes, layer)) = files.get(target.as_str()) {
            if out.get(link).is_none() && required(link) {
                let mut file = collected(bytes, *layer);
                file.alias_of = physical.contains(target.as_str()).then(|| target.clone());
                out.insert(*link, file);
            }
            continue;
        }
        let (low, rest_from) = if target.is_empty() {
            (String::new(), 0)
        } else {
            (format!("{target}/"), target.len() + 1)
        };
        let below = files
            .range::<str, _>((Bound::Included(low.as_str()), Bound::Unbounded))
            .take_while(|(path, _)| path.starts_with(low.as_str()));
        for (path, (bytes, layer)) in below {
            if physical.contains(path) {
                continue;
            }
            let alias = format!("{link}/{}", &path[rest_from..]);
            if out.get(&alias).is_some() || !tried.insert(alias.clone()) || !required(&alias) {
                continue;
            }
            if resolve(state, &alias).as_deref() == Some(*path) {
                out.insert(alias, collected(bytes, *layer));
            }
        }
    }
    out
}
