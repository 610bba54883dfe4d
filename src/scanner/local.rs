//! Images on disk, for one-shot scans: an OCI layout directory (`oci:DIR[:TAG]`), a tar of one
//! (`oci-archive:FILE[:TAG]`), or `docker save` output (`docker-archive:FILE[:TAG]`). Archives are
//! unpacked into a private temporary directory (the tar crate refuses entries outside it); messages
//! name the archive and the file inside it, never that directory.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::pipeline::LayerRef;
use super::registry::manifest::{self, Descriptor, ManifestKind, Platform, RawConfig};
use crate::domain::Digest;

/// The largest manifest, index or config read from disk.
const MAX_JSON_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRef {
    OciDir { path: PathBuf, tag: Option<String> },
    OciArchive { path: PathBuf, tag: Option<String> },
    DockerArchive { path: PathBuf, tag: Option<String> },
}

impl LocalRef {
    /// `None` when the reference is not a local one (no `oci:`-style prefix).
    pub fn parse(reference: &str) -> Option<LocalRef> {
        let (kind, rest) = reference.split_once(':')?;
        // `PATH:TAG`: a tag is what follows the last ':' when it contains no '/'.
        let (path, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') && !tag.is_empty() => {
                (PathBuf::from(path), Some(tag.to_owned()))
            }
            _ => (PathBuf::from(rest), None),
        };
        match kind {
            "oci" => Some(Self::OciDir { path, tag }),
            "oci-archive" => Some(Self::OciArchive { path, tag }),
            "docker-archive" => Some(Self::DockerArchive { path, tag }),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LocalError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> LocalError {
    LocalError {
        code: "InvalidImage",
        message: message.into(),
    }
}

fn io(path: &Path, e: std::io::Error) -> LocalError {
    LocalError {
        code: "ImageUnreadable",
        message: format!("cannot read {}: {e}", path.display()),
    }
}

/// One image found on disk: its layers, each with the file that holds it.
#[derive(Debug)]
pub struct LocalImage {
    /// The manifest's digest (for `docker-archive:`, the config's: the image id).
    pub manifest_digest: Digest,
    pub platform: Platform,
    pub layers: Vec<(LayerRef, PathBuf)>,
}

#[derive(Debug)]
pub struct Opened {
    pub images: Vec<LocalImage>,
    /// Index children that are not linux images: platform and reason.
    pub skipped: Vec<(String, String)>,
    /// Keeps an unpacked archive alive while its layers are read.
    _unpacked: Option<tempfile::TempDir>,
}

/// Finds the image(s) a local reference names. Blocking.
pub fn open(reference: &LocalRef) -> Result<Opened, LocalError> {
    match reference {
        LocalRef::OciDir { path, tag } => {
            let files = Files {
                root: path,
                archive: None,
            };
            oci_layout(&files, tag.as_deref(), None)
        }
        LocalRef::OciArchive { path, tag } => {
            let dir = unpack(path)?;
            let root = dir.path().to_owned();
            let files = Files {
                root: &root,
                archive: Some(path),
            };
            oci_layout(&files, tag.as_deref(), Some(dir))
        }
        LocalRef::DockerArchive { path, tag } => {
            let dir = unpack(path)?;
            let root = dir.path().to_owned();
            let files = Files {
                root: &root,
                archive: Some(path),
            };
            docker_archive(&files, tag.as_deref(), dir)
        }
    }
}

/// Where an image's files are read from, and how messages name them.
struct Files<'a> {
    root: &'a Path,
    /// The archive `root` was unpacked from.
    archive: Option<&'a Path>,
}

impl Files<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The image's files as a whole, as the user named them: the archive or the layout directory.
    fn name(&self) -> String {
        self.archive.unwrap_or(self.root).display().to_string()
    }

    /// One file, as the user can find it: `DIR/index.json`, or `index.json in app.tar`.
    fn name_of(&self, rel: &str) -> String {
        match self.archive {
            Some(archive) => format!("{rel} in {}", archive.display()),
            None => self.path(rel).display().to_string(),
        }
    }

    fn read_json(&self, rel: &str) -> Result<Vec<u8>, LocalError> {
        let path = self.path(rel);
        let unreadable = |e: std::io::Error| LocalError {
            code: "ImageUnreadable",
            message: format!("cannot read {}: {e}", self.name_of(rel)),
        };
        let meta = std::fs::metadata(&path).map_err(unreadable)?;
        if meta.len() > MAX_JSON_BYTES {
            return Err(invalid(format!(
                "{} is larger than {MAX_JSON_BYTES} bytes",
                self.name_of(rel)
            )));
        }
        std::fs::read(&path).map_err(unreadable)
    }

    /// A blob of an OCI layout, checked against its digest.
    fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, LocalError> {
        let bytes = self.read_json(&blob_path(&descriptor.digest))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != descriptor.digest.as_str() {
            return Err(LocalError {
                code: "DigestMismatch",
                message: format!("blob {} has digest {actual}", descriptor.digest),
            });
        }
        Ok(bytes)
    }
}

fn unpack(archive: &Path) -> Result<tempfile::TempDir, LocalError> {
    let dir = tempfile::tempdir().map_err(|e| io(archive, e))?;
    let file = std::fs::File::open(archive).map_err(|e| io(archive, e))?;
    tar::Archive::new(std::io::BufReader::new(file))
        .unpack(dir.path())
        .map_err(|e| {
            invalid(format!(
                "{} is not a readable tar archive: {e}",
                archive.display()
            ))
        })?;
    Ok(dir)
}

/// A blob's path within an OCI layout.
fn blob_path(digest: &Digest) -> String {
    let (algorithm, hex) = digest
        .as_str()
        .split_once(':')
        .unwrap_or(("sha256", digest.as_str()));
    format!("blobs/{algorithm}/{hex}")
}

fn platform_of(config: &[u8]) -> Result<Platform, LocalError> {
    let raw: RawConfig = serde_json::from_slice(config)
        .map_err(|e| invalid(format!("not a valid image config: {e}")))?;
    Ok(Platform {
        os: raw.os.unwrap_or_default(),
        architecture: raw.architecture.unwrap_or_default(),
        variant: raw.variant.filter(|v| !v.is_empty()),
    })
}

fn oci_layout(
    files: &Files<'_>,
    tag: Option<&str>,
    unpacked: Option<tempfile::TempDir>,
) -> Result<Opened, LocalError> {
    let index = files.read_json("index.json")?;
    let (_, kind) = manifest::parse_manifest(&index, Some(manifest::OCI_INDEX))
        .map_err(|e| invalid(format!("{}: {e}", files.name_of("index.json"))))?;
    let ManifestKind::Index { manifests } = kind else {
        return Err(invalid(format!(
            "{} is not an image index",
            files.name_of("index.json")
        )));
    };
    const REF_NAME: &str = "org.opencontainers.image.ref.name";
    let chosen: Vec<_> = match tag {
        Some(tag) => manifests
            .iter()
            .filter(|m| m.annotations.get(REF_NAME).is_some_and(|n| n == tag))
            .collect(),
        None => manifests.iter().collect(),
    };
    let entry = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(format!(
                "no image tagged {:?} in {}",
                tag.unwrap_or(""),
                files.name()
            )));
        }
        _ => {
            let tags: Vec<&str> = manifests
                .iter()
                .filter_map(|m| m.annotations.get(REF_NAME).map(String::as_str))
                .collect();
            return Err(invalid(format!(
                "{} holds several images; name one with :TAG ({})",
                files.name(),
                tags.join(", ")
            )));
        }
    };
    let mut opened = Opened {
        images: Vec::new(),
        skipped: Vec::new(),
        _unpacked: unpacked,
    };
    let bytes = files.read_blob(&entry.descriptor)?;
    let (_, kind) = manifest::parse_manifest(&bytes, Some(&entry.descriptor.media_type))
        .map_err(|e| invalid(e.to_string()))?;
    let children: Vec<(Descriptor, Option<Platform>)> = match kind {
        ManifestKind::Image { .. } => vec![(entry.descriptor.clone(), None)],
        ManifestKind::Index { manifests } => manifests
            .into_iter()
            .map(|m| (m.descriptor, m.platform))
            .collect(),
    };
    for (descriptor, platform) in children {
        if let Some(p) = &platform
            && !p.is_linux()
        {
            opened
                .skipped
                .push((p.to_string(), format!("platform {p} is not linux")));
            continue;
        }
        let bytes = files.read_blob(&descriptor)?;
        let (_, kind) = manifest::parse_manifest(&bytes, Some(&descriptor.media_type))
            .map_err(|e| invalid(e.to_string()))?;
        let ManifestKind::Image { config, layers } = kind else {
            opened.skipped.push((
                "unknown".to_owned(),
                format!("{} is a nested index", descriptor.digest),
            ));
            continue;
        };
        let platform = match platform {
            Some(p) => p,
            None => platform_of(&files.read_blob(&config)?)?,
        };
        if !platform.is_linux() {
            opened.skipped.push((
                platform.to_string(),
                format!("platform {platform} is not linux"),
            ));
            continue;
        }
        let layers = layers
            .iter()
            .map(|l| {
                (
                    LayerRef {
                        digest: l.digest.to_string(),
                        media_type: l.media_type.clone(),
                    },
                    files.path(&blob_path(&l.digest)),
                )
            })
            .collect();
        opened.images.push(LocalImage {
            manifest_digest: descriptor.digest,
            platform,
            layers,
        });
    }
    Ok(opened)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_archive(
    files: &Files<'_>,
    tag: Option<&str>,
    unpacked: tempfile::TempDir,
) -> Result<Opened, LocalError> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&files.read_json("manifest.json")?)
            .map_err(|e| invalid(format!("{}: {e}", files.name_of("manifest.json"))))?;
    let tagged = |e: &&DockerManifestEntry, tag: &str| {
        e.repo_tags
            .iter()
            .flatten()
            .any(|t| t == tag || t.rsplit_once(':').is_some_and(|(_, t)| t == tag))
    };
    let chosen: Vec<&DockerManifestEntry> = match tag {
        Some(tag) => entries.iter().filter(|e| tagged(e, tag)).collect(),
        None => entries.iter().collect(),
    };
    let entry = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(format!(
                "no image tagged {:?} in {}",
                tag.unwrap_or(""),
                files.name()
            )));
        }
        _ => {
            return Err(invalid(format!(
                "{} holds several images; name one with :TAG",
                files.name()
            )));
        }
    };
    let inside = |rel: &str| -> Result<(), LocalError> {
        if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
            return Err(invalid(format!(
                "{} names a path outside the archive: {rel}",
                files.name_of("manifest.json")
            )));
        }
        Ok(())
    };
    inside(&entry.config)?;
    let config = files.read_json(&entry.config)?;
    let platform = platform_of(&config)?;
    let mut opened = Opened {
        images: Vec::new(),
        skipped: Vec::new(),
        _unpacked: Some(unpacked),
    };
    if !platform.is_linux() {
        opened.skipped.push((
            platform.to_string(),
            format!("platform {platform} is not linux"),
        ));
        return Ok(opened);
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for rel in &entry.layers {
        inside(rel)?;
        let path = files.path(rel);
        let unreadable = |e: std::io::Error| LocalError {
            code: "ImageUnreadable",
            message: format!("cannot read {}: {e}", files.name_of(rel)),
        };
        // `docker save` names layers by path, not digest: hash each once so the reader can check it.
        let mut file = std::fs::File::open(&path).map_err(unreadable)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut file, &mut buffer).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        // Compression is sniffed from the bytes; the media type only names the layer as a tar.
        layers.push((
            LayerRef {
                digest,
                media_type: manifest::OCI_LAYER_TAR.to_owned(),
            },
            path,
        ));
    }
    let image_id = Digest::parse(&format!("sha256:{}", hex::encode(Sha256::digest(&config))))
        .map_err(|e| invalid(e.to_string()))?;
    opened.images.push(LocalImage {
        manifest_digest: image_id,
        platform,
        layers,
    });
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_references_parse() {
        assert_eq!(
            LocalRef::parse("oci:/tmp/layout:v1"),
            Some(LocalRef::OciDir {
                path: "/tmp/layout".into(),
                tag: Some("v1".into())
            })
        );
        assert_eq!(
            LocalRef::parse("oci:./layout"),
            Some(LocalRef::OciDir {
                path: "./layout".into(),
                tag: None
            })
        );
        assert_eq!(
            LocalRef::parse("docker-archive:img.tar"),
            Some(LocalRef::DockerArchive {
                path: "img.tar".into(),
                tag: None
            })
        );
        assert_eq!(LocalRef::parse("registry.example.com/app:1"), None);
    }

    /// The files of an unpacked archive are named inside the archive, never by the private
    /// directory they were unpacked into.
    #[test]
    fn archive_errors_name_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("app.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "oci-layout", std::io::empty())
            .unwrap();
        builder.finish().unwrap();
        drop(builder);

        for reference in [
            LocalRef::OciArchive {
                path: archive.clone(),
                tag: Some("v1".into()),
            },
            LocalRef::DockerArchive {
                path: archive.clone(),
                tag: None,
            },
        ] {
            let e = open(&reference).unwrap_err();
            let file = match reference {
                LocalRef::OciArchive { .. } => "index.json",
                _ => "manifest.json",
            };
            let expected = format!("cannot read {file} in {}: ", archive.display());
            assert!(e.message.starts_with(&expected), "{}", e.message);
            assert_eq!(e.code, "ImageUnreadable");
        }
    }
}
