//! Scans an image reference on a registry: resolve it (an index gives one image per linux
//! platform), build or reuse each image's inventory, and match it against the stored advisories.

use std::sync::Arc;
use std::time::Instant;

use crate::domain::Digest;
use crate::scanner::advisories::matcher::{Inventory, MatchReport};
use crate::scanner::analyzers::{self, Analyzer};
use crate::scanner::layers::Limits;
use crate::scanner::pipeline::{self, LayerReader, LayerRef, PipelineError};
use crate::scanner::registry::{ImageReference, RegistryClient, RegistryError, SkippedManifest};
use crate::store::{Pool, StoreError};

use super::inventories;
use super::matching::{CandidateCache, match_stored};

/// What the engine needs to scan: the analyzers (their versions key stored inventories), the
/// layer limits, the database, and the decoded-advisory cache.
pub struct Engine {
    pub analyzers: Arc<Vec<Box<dyn Analyzer>>>,
    pub limits: Limits,
    pub pool: Pool,
    pub cache: Arc<CandidateCache>,
}

impl Engine {
    pub fn new(pool: Pool) -> Self {
        Self {
            analyzers: Arc::new(analyzers::defaults()),
            limits: Limits::default(),
            pool,
            cache: Arc::new(CandidateCache::default()),
        }
    }
}

/// One scanned image (a platform of an index, or the image itself).
#[derive(Debug)]
pub struct ScannedImage {
    pub manifest_digest: Digest,
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
    pub skipped: Vec<SkippedManifest>,
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
            Self::Store(_) => "DatabaseUnavailable",
        }
    }
}

pub async fn scan(
    engine: &Engine,
    client: &RegistryClient,
    reference: &ImageReference,
) -> Result<ScanResult, ScanError> {
    let resolved = client.resolve(reference).await?;
    let key = analyzers::cache_key(&analyzers::analyzer_ids(&engine.analyzers));
    let mut images = Vec::with_capacity(resolved.images.len());
    for image in resolved.images {
        let started = Instant::now();
        let digest = image.manifest_digest.to_string();
        let (lookup_digest, lookup_key) = (digest.clone(), key.clone());
        let stored = crate::store::run(&engine.pool, move |c| {
            inventories::load(c, &lookup_digest, &lookup_key)
        })
        .await?;
        let (inventory, reused) = match stored {
            Some(inventory) => (inventory, true),
            None => {
                let layers: Vec<LayerRef> = image
                    .layers
                    .iter()
                    .map(|d| LayerRef {
                        digest: d.digest.to_string(),
                        media_type: d.media_type.clone(),
                    })
                    .collect();
                let repository = reference.repository.clone();
                let report = pipeline::inventory(
                    &layers,
                    engine.analyzers.clone(),
                    &engine.limits,
                    |layer| {
                        let descriptor = image
                            .layers
                            .iter()
                            .find(|d| d.digest.as_str() == layer.digest)
                            .cloned();
                        let (client, repository) = (client.clone(), repository.clone());
                        async move {
                            let descriptor = descriptor.ok_or_else(|| PipelineError::Source {
                                code: "InvalidManifest",
                                message: "a layer is missing from its manifest".to_owned(),
                            })?;
                            let blob =
                                client
                                    .blob_for(&repository, &descriptor)
                                    .await
                                    .map_err(|e| PipelineError::Source {
                                        code: e.code(),
                                        message: e.to_string(),
                                    })?;
                            Ok(Box::new(blob.into_async_read()) as LayerReader)
                        }
                    },
                )
                .await?;
                for warning in &report.warnings {
                    tracing::warn!(image = %digest, %warning, "analyzer warning");
                }
                let (save_digest, save_key, inventory, layer_count) = (
                    digest.clone(),
                    key.clone(),
                    report.inventory.clone(),
                    image.layers.len(),
                );
                crate::store::run(&engine.pool, move |c| {
                    inventories::save(c, &save_digest, &save_key, layer_count, &inventory)
                })
                .await?;
                (report.inventory, false)
            }
        };
        let (cache, matched) = (engine.cache.clone(), inventory.clone());
        let (report, _) =
            crate::store::run(&engine.pool, move |c| match_stored(c, &cache, &matched)).await?;
        let platform = match &image.platform.variant {
            Some(v) => format!("{}/{}/{v}", image.platform.os, image.platform.architecture),
            None => format!("{}/{}", image.platform.os, image.platform.architecture),
        };
        images.push(ScannedImage {
            manifest_digest: image.manifest_digest,
            platform,
            inventory,
            reused,
            report,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(ScanResult {
        index_digest: resolved.index_digest,
        images,
        skipped: resolved.skipped,
    })
}
