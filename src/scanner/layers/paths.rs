//! Lexical path handling. Paths are relative to the image root, `/`-separated, without empty,
//! `.` or `..` components; the root itself is `""`.

/// Normalises a tar member name or hardlink target: strips leading `/` and `./`, collapses `//`
/// and `.`, resolves `..` lexically. `None` when a `..` climbs above the root.
pub(super) fn normalize(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// The directory part of a normalised path (`""` for a top-level name).
pub(super) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// The last component of a normalised path.
pub(super) fn file_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `dir/name`, or `name` when `dir` is the root.
pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Where the symlink at normalised path `link` points, lexically (without following other links):
/// absolute targets start at the image root, relative ones at the link's directory. `None` when
/// the target climbs above the root.
pub(super) fn lexical_link_target(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        normalize(target)
    } else {
        normalize(&format!("{}/{}", parent(link), target))
    }
}

/// Every prefix of `path` at a component boundary, shortest first, ending with `path` itself,
/// each with the rest (`""` or `"/…"`).
pub(super) fn prefixes(path: &str) -> impl Iterator<Item = (&str, &str)> {
    path.match_indices('/')
        .map(|(i, _)| i)
        .chain(std::iter::once(path.len()))
        .map(move |i| (&path[..i], &path[i..]))
}

/// A stable 64-bit fingerprint (FNV-1a) of a path, for the paths a layer only needs to know
/// exist ([`super::LayerContent::other_paths`]).
pub(super) fn fingerprint(path: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
