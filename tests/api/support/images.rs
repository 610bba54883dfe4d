//! Images built by hand, without a container engine: tar layers ([`TarEntry`], [`Layer`],
//! gzip / zstd / none), [`Image`] with its config and manifest, and [`flatten_layers`], the
//! reference for applying layers with OCI whiteouts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Fixed timestamp used for tar mtimes and config `created` (reproducible digests).
pub const FIXED_MTIME: u64 = 1_700_000_000;
const FIXED_CREATED: &str = "2023-11-14T22:13:20Z";

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// Manifest flavour: OCI (`application/vnd.oci.*`) or Docker schema 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Oci,
    DockerV2,
}

/// One tar entry. Paths are relative, without `./` (as umoci writes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TarEntry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// Deletes `path` from lower layers: written as `<dir>/.wh.<name>`.
    Whiteout {
        path: String,
    },
    /// Hides everything below `dir` in lower layers: written as `<dir>/.wh..wh..opq`.
    OpaqueWhiteout {
        dir: String,
    },
}

impl TarEntry {
    pub fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self::File {
            path: clean_path(path),
            data: data.into(),
            mode,
        }
    }
    pub fn dir(path: &str, mode: u32) -> Self {
        Self::Dir {
            path: clean_path(path),
            mode,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Self::Symlink {
            path: clean_path(path),
            target: target.to_string(),
        }
    }
    pub fn hardlink(path: &str, target: &str) -> Self {
        Self::Hardlink {
            path: clean_path(path),
            target: clean_path(target),
        }
    }
    pub fn whiteout(path: &str) -> Self {
        Self::Whiteout {
            path: clean_path(path),
        }
    }
    pub fn opaque(dir: &str) -> Self {
        Self::OpaqueWhiteout {
            dir: clean_path(dir),
        }
    }
    /// The path written into the tar.
    pub fn tar_path(&self) -> String {
        match self {
            Self::File { path, .. }
            | Self::Dir { path, .. }
            | Self::Symlink { path, .. }
            | Self::Hardlink { path, .. } => path.clone(),
            Self::Whiteout { path } => match path.rsplit_once('/') {
                Some((d, n)) => format!("{d}/.wh.{n}"),
                None => format!(".wh.{path}"),
            },
            Self::OpaqueWhiteout { dir } => format!("{dir}/.wh..wh..opq"),
        }
    }
}

fn clean_path(p: &str) -> String {
    p.trim_start_matches("./").trim_matches('/').to_string()
}

/// A layer: uncompressed tar, compressed blob, digests.
#[derive(Clone, Debug)]
pub struct Layer {
    pub entries: Vec<TarEntry>,
    /// Uncompressed tar.
    pub tar: Vec<u8>,
    /// The blob as pushed (compressed per `compression`).
    pub blob: Vec<u8>,
    pub compression: Compression,
    /// `sha256:` of `blob`.
    pub digest: String,
    /// `sha256:` of `tar` (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// History `created_by` of this layer.
    pub created_by: String,
}

impl Layer {
    /// Regular files `(path, bytes, mode)`; parent directories are added automatically.
    pub fn from_files<P: AsRef<str>, B: AsRef<[u8]>>(
        files: &[(P, B, u32)],
        compression: Compression,
    ) -> Layer {
        let entries: Vec<TarEntry> = files
            .iter()
            .map(|(p, b, m)| TarEntry::file(p.as_ref(), b.as_ref().to_vec(), *m))
            .collect();
        Self::from_entries(&entries, compression)
    }

    /// Any entries (files, dirs, symlinks, hardlinks, whiteouts); missing parent directories
    /// are added (mode 0755) before their first child. Deterministic: mtime [`FIXED_MTIME`],
    /// uid/gid 0, GNU headers (long names via `././@LongLink`), gzip without name/mtime.
    pub fn from_entries(entries: &[TarEntry], compression: Compression) -> Layer {
        let tar = build_tar(entries);
        let blob = compress(&tar, compression);
        Layer {
            entries: entries.to_vec(),
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(&tar),
            tar,
            blob,
            compression,
            created_by: format!("crowsnest test layer ({} entries)", entries.len()),
        }
    }

    pub fn with_created_by(mut self, created_by: &str) -> Self {
        self.created_by = created_by.to_string();
        self
    }

    /// Same tar, other compression.
    pub fn recompressed(&self, compression: Compression) -> Layer {
        let blob = compress(&self.tar, compression);
        Layer {
            digest: sha256_digest(&blob),
            blob,
            compression,
            ..self.clone()
        }
    }

    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }

    pub fn media_type(&self, kind: MediaKind) -> &'static str {
        match (kind, self.compression) {
            (MediaKind::Oci, Compression::Gzip) => MT_OCI_LAYER_GZIP,
            (MediaKind::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (MediaKind::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (MediaKind::DockerV2, Compression::Gzip) => MT_DOCKER_LAYER_GZIP,
            // Not in the Docker v2.2 spec; containerd's name for it. Distribution 2.8 accepts it.
            (MediaKind::DockerV2, Compression::Zstd) => {
                "application/vnd.docker.image.rootfs.diff.tar.zstd"
            }
            (MediaKind::DockerV2, Compression::None) => {
                "application/vnd.docker.image.rootfs.diff.tar"
            }
        }
    }
}

fn build_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs_seen = std::collections::HashSet::new();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(FIXED_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for e in entries {
        let path = e.tar_path();
        // parents first
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            if dirs_seen.insert(parent.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, format!("{parent}/"), std::io::empty())
                    .expect("tar dir");
            }
        }
        match e {
            TarEntry::File { data, mode, .. } => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, &path, data.as_slice())
                    .expect("tar file");
            }
            TarEntry::Dir { mode, .. } => {
                if dirs_seen.insert(path.clone()) {
                    let mut h = header(tar::EntryType::Directory, *mode, 0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                        .expect("tar dir");
                }
            }
            TarEntry::Symlink { target, .. } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, &path, target).expect("tar symlink");
            }
            TarEntry::Hardlink { target, .. } => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, &path, target).expect("tar hardlink");
            }
            TarEntry::Whiteout { .. } | TarEntry::OpaqueWhiteout { .. } => {
                // umoci writes whiteouts as empty regular files with mode 0000.
                let mut h = header(tar::EntryType::Regular, 0, 0);
                b.append_data(&mut h, &path, std::io::empty())
                    .expect("tar whiteout");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            // GzEncoder writes mtime 0 and no file name: reproducible.
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(tar).expect("gzip");
            enc.finish().expect("gzip finish")
        }
        Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd"),
    }
}

/// Decompress a layer blob according to its media type (`+gzip`/`.gzip`, `+zstd`/`.zstd`, or
/// plain tar).
pub fn decompress_layer(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip layer");
    } else if media_type.ends_with("zstd") {
        out = zstd::decode_all(blob).expect("unzstd layer");
    } else {
        out = blob.to_vec();
    }
    out
}

/// What a path is after applying layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlatEntry {
    File { data: Vec<u8>, mode: u32 },
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// Reference implementation of layer application with OCI whiteout semantics (a test oracle):
/// whiteouts of a layer apply to the lower layers only, `.wh..wh..opq` empties a directory,
/// `.wh.name` deletes `name` and everything below it.
pub fn flatten_layers(tars: &[&[u8]]) -> BTreeMap<String, FlatEntry> {
    let mut fs: BTreeMap<String, FlatEntry> = BTreeMap::new();
    for tar_bytes in tars {
        let mut adds = Vec::new();
        let mut removes = Vec::new(); // (path, keep_dir_itself)
        let mut ar = tar::Archive::new(*tar_bytes);
        for entry in ar.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let path = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .into_owned();
            let path = clean_path(&path);
            if path.is_empty() {
                continue;
            }
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                removes.push((dir, true));
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                removes.push((
                    if dir.is_empty() {
                        hidden.to_string()
                    } else {
                        format!("{dir}/{hidden}")
                    },
                    false,
                ));
                continue;
            }
            let kind = entry.header().entry_type();
            let fe = if kind.is_dir() {
                FlatEntry::Dir
            } else if kind.is_symlink() {
                FlatEntry::Symlink(
                    entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else if kind.is_hard_link() {
                FlatEntry::Hardlink(
                    entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|l| clean_path(&l.to_string_lossy()))
                        .unwrap_or_default(),
                )
            } else {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).expect("read entry");
                FlatEntry::File {
                    data,
                    mode: entry.header().mode().unwrap_or(0),
                }
            };
            adds.push((path, fe));
        }
        for (p, keep_self) in removes {
            let prefix = format!("{p}/");
            fs.retain(|k, _| !(k.starts_with(&prefix) || (!keep_self && *k == p)));
        }
        for (p, fe) in adds {
            // a non-dir replacing a dir hides its children
            if fe != FlatEntry::Dir {
                let prefix = format!("{p}/");
                fs.retain(|k, _| !k.starts_with(&prefix));
            }
            fs.insert(p, fe);
        }
    }
    fs
}

/// `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", None)
    }
    pub fn linux_arm64() -> Self {
        Self::new("linux", "arm64", Some("v8"))
    }
    pub fn to_json(&self) -> Value {
        let mut v = json!({"os": self.os, "architecture": self.architecture});
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

/// An image: layers + platform; config and manifest are derived (deterministically).
#[derive(Clone, Debug)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub platform: Platform,
    pub kind: MediaKind,
    /// The config's `config` object (Cmd, Env, Labels, ...).
    pub container_config: Value,
}

impl Image {
    pub fn new(layers: Vec<Layer>, platform: Platform, kind: MediaKind) -> Self {
        Self {
            layers,
            platform,
            kind,
            container_config: json!({
                "Cmd": ["/bin/sh"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            }),
        }
    }

    /// Same image with other manifest media types.
    pub fn with_kind(mut self, kind: MediaKind) -> Self {
        self.kind = kind;
        self
    }

    /// Same image with every layer recompressed.
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.layers = self.layers.iter().map(|l| l.recompressed(c)).collect();
        self
    }

    pub fn config_media_type(&self) -> &'static str {
        match self.kind {
            MediaKind::Oci => MT_OCI_CONFIG,
            MediaKind::DockerV2 => MT_DOCKER_CONFIG,
        }
    }
    pub fn manifest_media_type(&self) -> &'static str {
        match self.kind {
            MediaKind::Oci => MT_OCI_MANIFEST,
            MediaKind::DockerV2 => MT_DOCKER_MANIFEST,
        }
    }

    /// Image config JSON (os, architecture, variant, config, rootfs.diff_ids, history).
    pub fn config_json(&self) -> Value {
        let mut c = json!({
            "created": FIXED_CREATED,
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": self.container_config,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": self.layers.iter().map(|l| json!({"created": FIXED_CREATED, "created_by": l.created_by})).collect::<Vec<_>>(),
        });
        if let Some(v) = &self.platform.variant {
            c["variant"] = json!(v);
        }
        c
    }
    pub fn config_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.config_json()).expect("serialize config")
    }
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config_bytes())
    }

    pub fn manifest_json(&self) -> Value {
        let config = self.config_bytes();
        json!({
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type(),
            "config": {
                "mediaType": self.config_media_type(),
                "digest": sha256_digest(&config),
                "size": config.len(),
            },
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": l.media_type(self.kind),
                "digest": l.digest,
                "size": l.size(),
            })).collect::<Vec<_>>(),
        })
    }
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest_json()).expect("serialize manifest")
    }
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest_bytes())
    }

    /// The filesystem after applying all layers (see [`flatten_layers`]).
    pub fn flattened(&self) -> BTreeMap<String, FlatEntry> {
        let tars: Vec<&[u8]> = self.layers.iter().map(|l| l.tar.as_slice()).collect();
        flatten_layers(&tars)
    }
}
