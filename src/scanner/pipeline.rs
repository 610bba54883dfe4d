//! From an image's layers to its inventory: each layer is streamed once, in order, keeping only the
//! files some analyzer asked for; the kept files are merged (whiteouts applied) and analyzed.

use std::future::Future;
use std::sync::Arc;

use tokio::io::AsyncRead;
use tokio_util::io::SyncIoBridge;

use super::analyzers::{self, AnalysisFailed, AnalysisReport, Analyzer};
use super::layers::{self, Compression, LayerError, Limits};

/// A layer of an image manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// `sha256:…` of the compressed blob.
    pub digest: String,
    pub media_type: String,
}

/// A layer's bytes as they arrive (from a registry, or a local layout).
pub type LayerReader = Box<dyn AsyncRead + Send + Unpin>;

/// Why building an inventory failed; `code()` is what a Failed scan reports.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The layer could not be fetched: the source's own code and message.
    #[error("{message}")]
    Source { code: &'static str, message: String },
    #[error("layer {digest}: {source}")]
    Layer { digest: String, source: LayerError },
    #[error("{0}")]
    Analysis(AnalysisFailed),
    #[error("the scan was interrupted: {0}")]
    Interrupted(String),
}

impl PipelineError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Source { code, .. } => code,
            Self::Layer { source, .. } => source.code(),
            Self::Analysis(_) => "AnalysisFailed",
            Self::Interrupted(_) => "ScanInterrupted",
        }
    }
}

/// Builds the inventory of one image. `open` starts the download of a layer; the layers are read
/// one after the other, each on a blocking thread, so memory holds only the files analyzers keep.
pub async fn inventory<F, Fut>(
    layers: &[LayerRef],
    analyzers: Arc<Vec<Box<dyn Analyzer>>>,
    limits: &Limits,
    open: F,
) -> Result<AnalysisReport, PipelineError>
where
    F: Fn(&LayerRef) -> Fut,
    Fut: Future<Output = Result<LayerReader, PipelineError>>,
{
    let mut contents = Vec::with_capacity(layers.len());
    for layer in layers {
        let layer_error = |source| PipelineError::Layer {
            digest: layer.digest.clone(),
            source,
        };
        let compression = Compression::from_media_type(&layer.media_type).map_err(layer_error)?;
        let reader = open(layer).await?;
        // Created here, on the runtime, so the blocking read can drive the async download.
        let bridge = SyncIoBridge::new(reader);
        let (digest, wanted, limits) = (layer.digest.clone(), analyzers.clone(), limits.clone());
        let content = tokio::task::spawn_blocking(move || {
            let select = layers::Select {
                by_path: &|path| analyzers::required_by_any(&wanted, path),
                by_content: &|path, head| analyzers::wanted_by_content(&wanted, path, head),
            };
            layers::read_layer_selecting(bridge, &digest, compression, &select, &limits)
        })
        .await
        .map_err(|e| PipelineError::Interrupted(e.to_string()))?
        .map_err(layer_error)?;
        contents.push(content);
    }
    tokio::task::spawn_blocking(move || {
        let files = layers::merge(&contents, &|path| {
            analyzers::required_by_any(&analyzers, path)
        });
        analyzers::analyze_all(&analyzers, &files)
    })
    .await
    .map_err(|e| PipelineError::Interrupted(e.to_string()))?
    .map_err(PipelineError::Analysis)
}
