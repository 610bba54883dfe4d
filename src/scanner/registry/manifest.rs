//! Manifest media types and the small part of the OCI / Docker schema 2 formats the scanner
//! needs: image manifests (config + layers) and indexes / manifest lists (platform children).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::domain::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The Accept header of every manifest request. Distribution answers 404 for an OCI manifest or
/// index unless its type is named here, so all four are always sent.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Whether `media_type` is the config of a container image (OCI or Docker).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_CONFIG || media_type == DOCKER_CONFIG
}

/// A content descriptor (config or layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    /// Size in bytes as declared by the manifest.
    pub size: u64,
}

/// `os/architecture[/variant]` of an index child or an image config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn is_linux(&self) -> bool {
        self.os == "linux"
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One child of an index / manifest list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub descriptor: Descriptor,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

impl IndexEntry {
    /// A BuildKit attestation manifest (`vnd.docker.reference.type: attestation-manifest`).
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
    }
}

/// What a fetched manifest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    /// An OCI image manifest or a Docker schema 2 manifest.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// An OCI image index or a Docker manifest list.
    Index { manifests: Vec<IndexEntry> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawIndexEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndexEntry {
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Why a manifest could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// Parses a manifest body. The media type is the body's `mediaType`, else the response's
/// `Content-Type` (umoci writes no `mediaType`), else guessed from the shape.
pub(crate) fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<(String, ManifestKind), ParseError> {
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| ParseError::Invalid(format!("not a valid manifest JSON document: {e}")))?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|c| !c.is_empty());
    let known = |m: &str| {
        [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .contains(&m)
    };
    let media_type = match (&raw.media_type, &content_type) {
        (Some(m), _) if !m.is_empty() => m.clone(),
        (_, Some(c)) if known(c) || c == DOCKER_SCHEMA1 || c == DOCKER_SCHEMA1_SIGNED => c.clone(),
        _ if raw.schema_version == Some(1) => DOCKER_SCHEMA1.to_owned(),
        _ if raw.manifests.is_some() => OCI_INDEX.to_owned(),
        _ if raw.config.is_some() => OCI_MANIFEST.to_owned(),
        _ => {
            return Err(ParseError::Unsupported(
                content_type.unwrap_or_else(|| "(none)".to_owned()),
            ));
        }
    };
    if !known(&media_type) {
        return Err(ParseError::Unsupported(media_type));
    }
    if raw.schema_version.is_some_and(|v| v != 2) {
        return Err(ParseError::Invalid(format!(
            "schemaVersion is {:?}, expected 2",
            raw.schema_version
        )));
    }
    let kind = if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
        let entries = raw
            .manifests
            .ok_or_else(|| ParseError::Invalid("an index without \"manifests\"".into()))?;
        let manifests = entries
            .into_iter()
            .map(|e| {
                Ok(IndexEntry {
                    descriptor: descriptor(e.media_type, &e.digest, e.size)?,
                    platform: e.platform.map(|p| Platform {
                        os: p.os,
                        architecture: p.architecture,
                        variant: p.variant.filter(|v| !v.is_empty()),
                    }),
                    annotations: e.annotations.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, ParseError>>()?;
        ManifestKind::Index { manifests }
    } else {
        let config = raw
            .config
            .ok_or_else(|| ParseError::Invalid("an image manifest without \"config\"".into()))?;
        let config = descriptor(config.media_type, &config.digest, config.size)?;
        let layers = raw
            .layers
            .ok_or_else(|| ParseError::Invalid("an image manifest without \"layers\"".into()))?
            .into_iter()
            .map(|l| descriptor(l.media_type, &l.digest, l.size))
            .collect::<Result<Vec<_>, ParseError>>()?;
        ManifestKind::Image { config, layers }
    };
    Ok((media_type, kind))
}

fn descriptor(media_type: String, digest: &str, size: u64) -> Result<Descriptor, ParseError> {
    let digest = Digest::parse(digest).map_err(|e| ParseError::Invalid(e.to_string()))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
    })
}

/// The fields of an image config that the client reads (the platform).
#[derive(Deserialize)]
pub(crate) struct RawConfig {
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_an_oci_manifest_without_media_type_field() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":7}},
                "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":9}}]}}"#,
            dg('a'),
            dg('b')
        );
        let (mt, kind) = parse_manifest(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(mt, OCI_MANIFEST);
        let ManifestKind::Image { config, layers } = kind else {
            panic!("not an image")
        };
        assert_eq!(config.size, 7);
        assert_eq!(layers[0].digest.as_str(), dg('b'));
        // Without a Content-Type either: guessed from the shape.
        let (mt, _) = parse_manifest(body.as_bytes(), Some("application/octet-stream")).unwrap();
        assert_eq!(mt, OCI_MANIFEST);
    }

    #[test]
    fn parses_an_index_with_platforms_and_annotations() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
                {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
                {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":2,"platform":{{"os":"unknown","architecture":"unknown"}},
                  "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#,
            dg('c'),
            dg('d')
        );
        let (mt, kind) = parse_manifest(body.as_bytes(), None).unwrap();
        assert_eq!(mt, DOCKER_MANIFEST_LIST);
        let ManifestKind::Index { manifests } = kind else {
            panic!("not an index")
        };
        assert_eq!(
            manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(!manifests[0].is_attestation());
        assert!(manifests[1].is_attestation());
    }

    #[test]
    fn rejects_bad_and_unsupported_manifests() {
        assert!(matches!(
            parse_manifest(b"not json", Some(OCI_MANIFEST)),
            Err(ParseError::Invalid(_))
        ));
        assert!(matches!(
            parse_manifest(br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#, None),
            Err(ParseError::Unsupported(m)) if m == DOCKER_SCHEMA1
        ));
        assert!(matches!(
            parse_manifest(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#,
                None
            ),
            Err(ParseError::Unsupported(_))
        ));
        let bad_digest = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"sha256:xyz","size":1}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_manifest(bad_digest.as_bytes(), None),
            Err(ParseError::Invalid(_))
        ));
        let no_layers = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":1}}}}"#,
            dg('e')
        );
        assert!(matches!(
            parse_manifest(no_layers.as_bytes(), None),
            Err(ParseError::Invalid(_))
        ));
        let negative = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":-1}},"layers":[]}}"#,
            dg('e')
        );
        assert!(matches!(
            parse_manifest(negative.as_bytes(), None),
            Err(ParseError::Invalid(_))
        ));
    }
}
