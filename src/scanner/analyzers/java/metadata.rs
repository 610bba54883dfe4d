//! What a jar says about itself: `META-INF/maven/<group>/<artifact>/pom.properties` (written by
//! Maven's archiver, and copied into shaded jars for every library they hold) and, failing that,
//! `META-INF/MANIFEST.MF`.

/// A Maven identity as written in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinates {
    pub group: String,
    pub artifact: String,
    pub version: String,
}

/// The longest group id, artifact id or version taken (real ones are far shorter); a longer one
/// is not a Maven identity but a hostile file, and would let one archive hold gigabytes of names.
const MAX_FIELD_LEN: usize = 256;

/// Whether `path` (an entry of an archive) is a `pom.properties` where Maven puts it:
/// `META-INF/maven/<group>/<artifact>/pom.properties`.
pub fn is_pom_properties(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("META-INF/maven/") else {
        return false;
    };
    let mut parts = rest.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(g), Some(a), Some("pom.properties"), None) if !g.is_empty() && !a.is_empty()
    )
}

/// `groupId`, `artifactId` and `version` of a `pom.properties`, or why it holds none.
///
/// The file is a Java properties file as Maven writes it: `key=value` lines and `#` comments.
/// `key: value` and `key value` are read as well; backslash escapes and continued lines are not
/// (Maven never writes them for these keys).
pub fn pom_properties(text: &str) -> Result<Coordinates, String> {
    let mut group = None;
    let mut artifact = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        let split = line
            .find(['=', ':', ' ', '\t'])
            .map_or((line, ""), |at| line.split_at(at));
        let key = split.0;
        let value = split
            .1
            .trim_start_matches([' ', '\t'])
            .strip_prefix(['=', ':'])
            .unwrap_or(split.1.trim_start_matches([' ', '\t']))
            .trim();
        let slot = match key {
            "groupId" => &mut group,
            "artifactId" => &mut artifact,
            "version" => &mut version,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(Coordinates {
        group: field("groupId", group)?,
        artifact: field("artifactId", artifact)?,
        version: field("version", version)?,
    })
}

fn field(key: &str, value: Option<&str>) -> Result<String, String> {
    match value {
        None | Some("") => Err(format!("no {key}")),
        Some(v) if v.len() > MAX_FIELD_LEN => Err(format!(
            "{key} is {} bytes long (at most {MAX_FIELD_LEN} taken)",
            v.len()
        )),
        // An unfiltered template (`${project.version}`) names no release.
        Some(v) if v.contains("${") => Err(format!("{key} is an unexpanded placeholder {v:?}")),
        Some(v) => Ok(v.to_owned()),
    }
}

/// The Maven identity a manifest names reliably, if any.
///
/// A manifest has no field for a Maven identity, so one is taken only when two independent
/// fields agree on it, as the default settings of Maven's jar and bundle plugins write them:
/// `Implementation-Vendor-Id` is the group id, `Bundle-SymbolicName` is `<group id>.<artifact
/// id>` and `Implementation-Title` is the artifact id (compared ignoring ASCII case: Jackson
/// writes `Jackson-core`), and `Implementation-Version` is the version. The artifact id is taken
/// from the symbolic name. Anything else (a symbolic name that shortens the group, as
/// `org.apache.commons.io` for `commons-io:commons-io`; no vendor id; a free-text title) names
/// no identity: a wrong group or artifact would match the wrong advisories, or hide the right
/// ones. `Bundle-Version` is never used (OSGi rewrites Maven versions: `31.1.0.jre`).
pub fn manifest_identity(text: &str) -> Option<Coordinates> {
    let main = main_section(text);
    let get = |key: &str| {
        main.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let group = get("Implementation-Vendor-Id").filter(|g| is_coordinate(g))?;
    let title = get("Implementation-Title")?;
    let version = get("Implementation-Version")?;
    let symbolic = get("Bundle-SymbolicName")?;
    // `Bundle-SymbolicName: name;singleton:=true`: directives follow the name.
    let symbolic = symbolic.split(';').next().unwrap_or(symbolic).trim();
    let artifact = symbolic
        .strip_prefix(group)?
        .strip_prefix('.')
        .filter(|a| is_coordinate(a) && a.eq_ignore_ascii_case(title))?;
    let coordinates = Coordinates {
        group: field("Implementation-Vendor-Id", Some(group)).ok()?,
        artifact: field("Bundle-SymbolicName", Some(artifact)).ok()?,
        version: field("Implementation-Version", Some(version)).ok()?,
    };
    Some(coordinates)
}

/// Characters Maven allows in a group or artifact id.
fn is_coordinate(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The manifest's main section (up to the first blank line) as `(name, value)` pairs, with
/// continuation lines (starting with one space) joined as the JAR specification says: without
/// the space.
fn main_section(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if let Some(more) = line.strip_prefix(' ') {
            if let Some((_, value)) = out.last_mut() {
                value.push_str(more);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim_start().to_owned()));
        }
    }
    for (_, value) in &mut out {
        *value = value.trim().to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coords(g: &str, a: &str, v: &str) -> Coordinates {
        Coordinates {
            group: g.to_owned(),
            artifact: a.to_owned(),
            version: v.to_owned(),
        }
    }

    #[test]
    fn pom_properties_paths() {
        for (path, want) in [
            ("META-INF/maven/org.slf4j/slf4j-api/pom.properties", true),
            ("META-INF/maven/g/a/pom.properties", true),
            ("META-INF/maven/g/a/pom.xml", false),
            ("META-INF/maven/g/pom.properties", false),
            ("META-INF/maven/g/a/b/pom.properties", false),
            ("META-INF/maven//a/pom.properties", false),
            ("BOOT-INF/classes/META-INF/maven/g/a/pom.properties", false),
            ("pom.properties", false),
        ] {
            assert_eq!(is_pom_properties(path), want, "{path}");
        }
    }

    #[test]
    fn pom_properties_fields() {
        let text = "#Created by Apache Maven 3.6.3\r\ngroupId=org.slf4j\r\nartifactId=slf4j-api\r\nversion=1.7.32\r\n";
        assert_eq!(
            pom_properties(text),
            Ok(coords("org.slf4j", "slf4j-api", "1.7.32"))
        );
        // Other separators the properties format allows; the last value of a key wins.
        let text = "! comment\n  groupId : g\nartifactId a\nversion=0.9\nversion=1.0\n";
        assert_eq!(pom_properties(text), Ok(coords("g", "a", "1.0")));
    }

    #[test]
    fn pom_properties_without_identity() {
        assert_eq!(
            pom_properties("groupId=g\nartifactId=a\n"),
            Err("no version".to_owned())
        );
        assert_eq!(
            pom_properties("groupId=g\nartifactId=\nversion=1"),
            Err("no artifactId".to_owned())
        );
        assert!(
            pom_properties("groupId=g\nartifactId=a\nversion=${project.version}")
                .unwrap_err()
                .contains("placeholder")
        );
        let long = format!("groupId=g\nartifactId=a\nversion={}", "1".repeat(300));
        assert!(pom_properties(&long).unwrap_err().contains("300 bytes"));
        assert_eq!(pom_properties(""), Err("no groupId".to_owned()));
    }

    /// The main attributes jackson-core's jars on Maven Central carry (maven-bundle-plugin
    /// defaults), with a continuation line and an attribute section after the blank line.
    const JACKSON: &str = "Manifest-Version: 1.0\r\n\
        Implementation-Title: Jackson-core\r\n\
        Implementation-Version: 2.14.1\r\n\
        Implementation-Vendor-Id: com.fasterxml.jackson\r\n .core\r\n\
        Bundle-SymbolicName: com.fasterxml.jackson.core.jackson-core\r\n\
        Bundle-Version: 2.14.1\r\n\
        \r\n\
        Name: com/fasterxml/jackson/core/\r\n\
        Implementation-Version: 9.9.9\r\n";

    #[test]
    fn manifest_identity_when_fields_agree() {
        assert_eq!(
            manifest_identity(JACKSON),
            Some(coords(
                "com.fasterxml.jackson.core",
                "jackson-core",
                "2.14.1"
            ))
        );
        let with_directive =
            JACKSON.replace("jackson-core\r\n", "jackson-core;singleton:=true\r\n");
        assert!(manifest_identity(&with_directive).is_some());
    }

    #[test]
    fn manifest_identity_refused_when_unsure() {
        // Debian's commons-io: the symbolic name shortens the group; the title is free text.
        let commons_io = "Implementation-Title: Apache Commons IO\n\
            Implementation-Version: 2.11.0\n\
            Implementation-Vendor-Id: commons-io\n\
            Bundle-SymbolicName: org.apache.commons.io\n";
        assert_eq!(manifest_identity(commons_io), None);
        // Debian's slf4j-api: no vendor id.
        let slf4j = "Implementation-Title: slf4j-api\nImplementation-Version: 1.7.32\n\
            Bundle-SymbolicName: slf4j.api\nBundle-Version: 1.7.32\n";
        assert_eq!(manifest_identity(slf4j), None);
        for (from, to) in [
            (
                "Implementation-Title: Jackson-core",
                "Implementation-Title: Jackson Core",
            ),
            ("Implementation-Version: 2.14.1\r\n", ""),
            (
                "Bundle-SymbolicName: com.fasterxml.jackson.core.",
                "Bundle-SymbolicName: com.fasterxml.jacksoncore.",
            ),
            // The version is only in the section of one package, not the main one.
            ("Implementation-Version: 2.14.1\r\n", "X: y\r\n"),
        ] {
            let text = JACKSON.replacen(from, to, 1);
            assert_ne!(text, JACKSON, "{from}");
            assert_eq!(manifest_identity(&text), None, "{from} -> {to}");
        }
    }
}
