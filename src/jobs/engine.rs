//! The scan engine: an image reference in, each image's inventory and findings out. Its steps
//! are the scanner's (which never touches the database); it lives in `jobs` because it also
//! reads and writes stored inventories and matches against the stored advisories.
//!
//! A scan runs these stages, in this order:
//! 1. resolve the reference to its images: [`scan`] asks the registry (an index gives one image
//!    per linux platform; its other children are reported as skipped), [`scan_local`] opens an
//!    image layout or archive on disk;
//! 2. index each image (`index_image`): reuse the inventory stored for its manifest when the
//!    same analyzers built it, else pull its layers through the analyzers (`build_inventory`)
//!    and store the result;
//! 3. match the inventory against the stored advisories (`match_advisories`);
//! 4. the [`ScanResult`]: per image, its inventory, its match report and how long it took.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::domain::Digest;
use crate::scanner::advisories::matcher::{Inventory, MatchReport};
use crate::scanner::analyzers::{self, Analyzer};
use crate::scanner::layers::Limits;
use crate::scanner::local::{self, LocalImage, LocalRef};
use crate::scanner::pipeline::{self, LayerReader, LayerRef, PipelineError};
use crate::scanner::registry::{
    Descriptor, ImageReference, RegistryClient, RegistryError, ResolvedImage,
};
use crate::store::{AnyConnection, Pool, StoreError};

use super::inventories;
use super::matching::{CandidateCache, match_stored};

/// What the engine needs to scan: the analyzers (their versions key stored inventories), the
/// layer limits, the database, and the decoded-advisory cache.
pub struct Engine {
    pub analyzers: Arc<Vec<Box<dyn Analyzer>>>,
    pub limits: Limits,
    pub pool: Pool,
    pub cache: Arc<CandidateCache>,
    /// Manifests being indexed now: a second scan of one waits for the first and reuses its
    /// inventory instead of pulling the same layers beside it.
    indexing: DigestLocks,
}

impl Engine {
    pub fn new(pool: Pool) -> Self {
        Self {
            analyzers: Arc::new(analyzers::defaults()),
            limits: Limits::default(),
            pool,
            cache: Arc::new(CandidateCache::default()),
            indexing: DigestLocks::default(),
        }
    }

    /// The key stored inventories are built under: the analyzers' names and versions.
    pub fn analyzers_key(&self) -> String {
        analyzers::cache_key(&analyzers::analyzer_ids(&self.analyzers))
    }
}

/// One lock per key, held across awaits; a key's entry lives while someone holds or awaits it.
#[derive(Default)]
struct DigestLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

struct DigestGuard<'a> {
    locks: &'a DigestLocks,
    key: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl DigestLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn lock(&self, key: &str) -> DigestGuard<'_> {
        let lock = self.map().entry(key.to_owned()).or_default().clone();
        DigestGuard {
            locks: self,
            key: key.to_owned(),
            held: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for DigestGuard<'_> {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut map = self.locks.map();
        // Only the map still refers to it: nobody holds or awaits the key.
        if map
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// One scanned image (a platform of an index, or the image itself).
#[derive(Debug)]
pub struct ScannedImage {
    pub manifest_digest: Digest,
    /// The manifest's media type as the registry served it; none for an image read from disk.
    pub media_type: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: String,
    pub inventory: Inventory,
    /// The inventory came from the database: no layer was pulled.
    pub reused: bool,
    pub report: MatchReport,
    pub seconds: f64,
}

#[derive(Debug)]
pub struct ScanResult {
    pub index_digest: Option<Digest>,
    pub images: Vec<ScannedImage>,
    /// Index children that are not linux images, with the reason.
    pub skipped: Vec<SkippedImage>,
}

#[derive(Debug, Clone)]
pub struct SkippedImage {
    /// `os/arch[/variant]`, or `unknown`.
    pub platform: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ScanError {
    /// A stable code for a Failed scan (`RegistryUnauthorized`, `DigestMismatch`, `PathTraversal`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Registry(e) => e.code(),
            Self::Pipeline(e) => e.code(),
            Self::Store(e) if e.is_conflict() => "Conflict",
            Self::Store(_) => "DatabaseUnavailable",
        }
    }
}

/// An image to inventory and match, wherever its layers come from.
struct Target {
    manifest_digest: Digest,
    media_type: Option<String>,
    platform: String,
    layers: Vec<LayerRef>,
}

impl Target {
    fn from_registry(image: &ResolvedImage) -> Self {
        Self {
            manifest_digest: image.manifest_digest.clone(),
            media_type: Some(image.media_type.clone()),
            platform: image.platform.to_string(),
            layers: image
                .layers
                .iter()
                .map(|d| LayerRef {
                    digest: d.digest.to_string(),
                    media_type: d.media_type.clone(),
                })
                .collect(),
        }
    }

    fn from_local(image: &LocalImage) -> Self {
        Self {
            manifest_digest: image.manifest_digest.clone(),
            media_type: None,
            platform: image.platform.to_string(),
            layers: image
                .layers
                .iter()
                .map(|(layer, _)| layer.clone())
                .collect(),
        }
    }
}

/// Scans an image reference on a registry: resolves it, then indexes and matches each of its
/// linux images, reading their layers from the registry.
pub async fn scan(
    engine: &Engine,
    client: &RegistryClient,
    reference: &ImageReference,
) -> Result<ScanResult, ScanError> {
    let resolved = client.resolve(reference).await?;
    let descriptors: Vec<Descriptor> = resolved
        .images
        .iter()
        .flat_map(|i| i.layers.iter().cloned())
        .collect();
    let targets = resolved.images.iter().map(Target::from_registry).collect();
    let open = |layer: &LayerRef| {
        let descriptor = descriptors
            .iter()
            .find(|d| d.digest.as_str() == layer.digest)
            .cloned();
        let (client, repository) = (client.clone(), reference.repository.clone());
        async move {
            let descriptor = descriptor.ok_or_else(|| PipelineError::Source {
                code: "InvalidManifest",
                message: "a layer is missing from its manifest".to_owned(),
            })?;
            let blob = client
                .blob_for(&repository, &descriptor)
                .await
                .map_err(|e| PipelineError::Source {
                    code: e.code(),
                    message: e.to_string(),
                })?;
            Ok(Box::new(blob.into_async_read()) as LayerReader)
        }
    };
    let images = index_and_match(engine, targets, open).await?;
    let skipped = resolved
        .skipped
        .into_iter()
        .map(|s| SkippedImage {
            platform: s.platform,
            reason: format!("{} ({})", s.reason, s.digest),
        })
        .collect();
    Ok(ScanResult {
        index_digest: resolved.index_digest,
        images,
        skipped,
    })
}

/// Scans an image from disk (`oci:`, `oci-archive:`, `docker-archive:`): the same stages as
/// [`scan`], with the layers read from files.
pub async fn scan_local(engine: &Engine, reference: LocalRef) -> Result<ScanResult, ScanError> {
    let opened = tokio::task::spawn_blocking(move || local::open(&reference))
        .await
        .map_err(|e| PipelineError::Interrupted(e.to_string()))?
        .map_err(|e| PipelineError::Source {
            code: e.code,
            message: e.message,
        })?;
    let files: Vec<(LayerRef, std::path::PathBuf)> = opened
        .images
        .iter()
        .flat_map(|i| i.layers.iter().cloned())
        .collect();
    let targets = opened.images.iter().map(Target::from_local).collect();
    let open = |layer: &LayerRef| {
        let path = files
            .iter()
            .find(|(l, _)| l.digest == layer.digest)
            .map(|(_, p)| p.clone());
        async move {
            let path = path.ok_or_else(|| PipelineError::Source {
                code: "InvalidImage",
                message: "a layer has no file".to_owned(),
            })?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| PipelineError::Source {
                    code: "ImageUnreadable",
                    message: format!("cannot read {}: {e}", path.display()),
                })?;
            Ok(Box::new(file) as LayerReader)
        }
    };
    let images = index_and_match(engine, targets, open).await?;
    let skipped = opened
        .skipped
        .iter()
        .map(|(platform, reason)| SkippedImage {
            platform: platform.clone(),
            reason: reason.clone(),
        })
        .collect();
    drop(opened);
    Ok(ScanResult {
        index_digest: None,
        images,
        skipped,
    })
}

/// Indexes and matches each target, one after the other.
async fn index_and_match<F, Fut>(
    engine: &Engine,
    targets: Vec<Target>,
    open: F,
) -> Result<Vec<ScannedImage>, ScanError>
where
    F: Fn(&LayerRef) -> Fut,
    Fut: std::future::Future<Output = Result<LayerReader, PipelineError>>,
{
    let analyzers_key = engine.analyzers_key();
    let mut images = Vec::with_capacity(targets.len());
    for target in targets {
        let started = Instant::now();
        let (inventory, reused) = index_image(engine, &analyzers_key, &target, &open).await?;
        let report = match_advisories(engine, &inventory).await?;
        images.push(ScannedImage {
            manifest_digest: target.manifest_digest,
            media_type: target.media_type,
            platform: target.platform,
            inventory,
            reused,
            report,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(images)
}

/// The image's inventory, and whether it was reused: the one stored for its manifest when the
/// same analyzers (`analyzers_key`) built it, else one built from its layers, stored for the
/// next scan of the same manifest.
async fn index_image<F, Fut>(
    engine: &Engine,
    analyzers_key: &str,
    target: &Target,
    open: &F,
) -> Result<(Inventory, bool), ScanError>
where
    F: Fn(&LayerRef) -> Fut,
    Fut: std::future::Future<Output = Result<LayerReader, PipelineError>>,
{
    let digest = target.manifest_digest.to_string();
    let _indexing = engine.indexing.lock(&digest).await;
    let (lookup_digest, lookup_key) = (digest.clone(), analyzers_key.to_owned());
    let stored = crate::store::run(&engine.pool, move |c| {
        inventories::load(c, &lookup_digest, &lookup_key)
    })
    .await?;
    if let Some(inventory) = stored {
        return Ok((inventory, true));
    }
    let inventory = build_inventory(engine, &digest, &target.layers, open).await?;
    let (save_digest, save_key, saved, layer_count) = (
        digest,
        analyzers_key.to_owned(),
        inventory.clone(),
        target.layers.len(),
    );
    // Other processes (or registries holding the same digest) may store it at the same moment.
    crate::store::run_transaction(&engine.pool, move |c| {
        crate::store::lock_keys(c, [crate::store::manifest_key(&save_digest)])?;
        inventories::save(c, &save_digest, &save_key, layer_count, &saved)
    })
    .await?;
    Ok((inventory, false))
}

/// Pulls the layers through the analyzers; their warnings are logged, not failures.
async fn build_inventory<F, Fut>(
    engine: &Engine,
    digest: &str,
    layers: &[LayerRef],
    open: &F,
) -> Result<Inventory, ScanError>
where
    F: Fn(&LayerRef) -> Fut,
    Fut: std::future::Future<Output = Result<LayerReader, PipelineError>>,
{
    let report =
        pipeline::inventory(layers, engine.analyzers.clone(), &engine.limits, open).await?;
    for warning in &report.warnings {
        tracing::warn!(image = %digest, %warning, "analyzer warning");
    }
    Ok(report.inventory)
}

/// Matches an inventory against the stored advisories (through the engine's candidate cache).
async fn match_advisories(
    engine: &Engine,
    inventory: &Inventory,
) -> Result<MatchReport, ScanError> {
    let (cache, matched) = (engine.cache.clone(), inventory.clone());
    let (report, _) =
        crate::store::run(&engine.pool, move |c| match_stored(c, &cache, &matched)).await?;
    Ok(report)
}

/// Stages 2 and 3 of a re-assessment, on the caller's connection: the inventory stored for the
/// manifest by the current analyzers, matched again. `None` when there is none: the image must be
/// read from its registry.
pub fn rematch_stored(
    c: &mut AnyConnection,
    cache: &CandidateCache,
    analyzers_key: &str,
    manifest_digest: &Digest,
) -> diesel::QueryResult<Option<(Inventory, MatchReport)>> {
    let Some(inventory) = inventories::load(c, manifest_digest.as_str(), analyzers_key)? else {
        return Ok(None);
    };
    let (report, _) = match_stored(c, cache, &inventory)?;
    Ok(Some((inventory, report)))
}
