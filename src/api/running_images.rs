//! Which images clusters run, reported as the Kubernetes PodList `kubectl get pods -A -o json`
//! prints. A cluster's report replaces its previous one; running images are re-assessed daily,
//! and those from connected registries that were never scanned are scanned now (`Runtime`). A
//! report has limits (pods, containers: 413 beyond them; new scans: the rest wait).

use std::collections::BTreeSet;

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use super::input;
use crate::api::auth::Caller;
use crate::domain::{Digest, RepositoryName, Role, SubscriptionId, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::jobs::running_images;
use crate::store::running_images::RunningImageRow;

/// Largest report accepted (a PodList of a few thousand pods).
pub const MAX_REPORT: usize = 32 * 1024 * 1024;

/// The parts of a PodList Crowsnest reads; everything else is ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PodList {
    /// `List` (kubectl) or `PodList` (the API server).
    pub kind: String,
    pub items: Vec<Pod>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Pod {
    pub metadata: PodMetadata,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PodMetadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    pub ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    #[serde(default)]
    pub image: String,
    /// `docker-pullable://host/repo@sha256:…` (dockershim) or `host/repo@sha256:…` (containerd):
    /// the digest the node pulled.
    #[serde(rename = "imageID", default)]
    pub image_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunningImagesReport {
    pub cluster: String,
    /// Containers in the report (init and ephemeral ones included).
    pub containers: usize,
    /// Distinct image digests running.
    pub images: usize,
    /// Of those, images from registries connected in this subscription.
    pub from_connected_registries: usize,
    /// Never-scanned images queued for a scan by this report (at most the report limit, see
    /// `scansDeferred`; images already queued are not counted).
    pub scans_queued: usize,
    /// Never-scanned images not queued by this report because it reached its limit of new scans;
    /// a later report queues them.
    pub scans_deferred: usize,
    /// Runtime scans that were queued but not started yet, cancelled because no cluster of the
    /// subscription runs their image any more.
    pub scans_cancelled: usize,
    /// Registries the report names that are not connected (their images are not assessed).
    pub unconnected_registries: Vec<String>,
    /// Containers whose status names no digest yet (still pulling, or waiting).
    pub without_digest: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClusterPath {
    #[serde(rename = "subscriptionId")]
    #[param(rename = "subscriptionId")]
    pub subscription_id: String,
    /// A cluster name: 1–63 letters, digits, `-`, `_` or `.`.
    pub cluster: String,
}

/// Where a container's image comes from: registry host, repository and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub registry: String,
    pub repository: String,
    pub digest: String,
}

/// Reads a container status's `imageID`. Docker Hub names get their implicit host and `library/`.
pub fn parse_image_id(image_id: &str) -> Option<Pulled> {
    let s = image_id
        .strip_prefix("docker-pullable://")
        .or_else(|| image_id.strip_prefix("docker://"))
        .unwrap_or(image_id);
    let (name, digest) = s.rsplit_once('@')?;
    let digest = Digest::parse(digest).ok()?.to_string();
    // A tag may precede the digest (`repo:tag@sha256:…`); a port never follows the first '/'.
    let name = match name.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((repo, _tag)) => format!("{head}/{repo}"),
            None => name.to_owned(),
        },
        None => name.split(':').next().unwrap_or(name).to_owned(),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (host.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name),
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let repository = RepositoryName::parse(&repository).ok()?.as_str().to_owned();
    Some(Pulled {
        registry,
        repository,
        digest,
    })
}

/// What [`valid_cluster`] accepts.
pub const CLUSTER_PATTERN: &str = "^[A-Za-z0-9._-]{1,63}$";

/// The kinds a report may have: `List` (kubectl) or `PodList` (the API server).
pub const POD_LIST_KINDS: [&str; 2] = ["List", "PodList"];

pub fn valid_cluster(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Replaces a cluster's report of running containers.
#[utoipa::path(
    put,
    path = "/subscriptions/{subscriptionId}/providers/Microsoft.Security/clusters/{cluster}/runningImages",
    operation_id = "RunningImages_Report",
    tag = "Images",
    params(ClusterPath, ApiVersionQuery),
    request_body(content = PodList, description = "The output of `kubectl get pods -A -o json`"),
    responses(
        (status = 200, description = "Recorded", body = RunningImagesReport),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ClusterPath>,
    query: web::Query<ApiVersionQuery>,
    body: web::Bytes,
) -> Result<web::Json<RunningImagesReport>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let subscription = SubscriptionId::parse(&path.subscription_id)?;
    caller.authorize(&subscription, Role::Contributor)?;
    if !valid_cluster(&path.cluster) {
        return Err(ApiError::bad_request(
            "InvalidResourceName",
            "A cluster name has 1 to 63 letters, digits, '-', '_' or '.'.",
        ));
    }
    let pods: PodList = input::parse_json(&body, |e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The body is not a Kubernetes PodList (kubectl get pods -A -o json): {e}"),
        )
    })?;
    let limits = state.report_limits;
    if pods.items.len() > limits.max_pods {
        return Err(ApiError::PayloadTooLarge(format!(
            "The report lists {} pods; at most {} are accepted in one report (CROWSNEST_REPORT_MAX_PODS).",
            pods.items.len(),
            limits.max_pods
        )));
    }
    let statuses: usize = pods
        .items
        .iter()
        .map(|p| {
            p.status.container_statuses.len()
                + p.status.init_container_statuses.len()
                + p.status.ephemeral_container_statuses.len()
        })
        .sum();
    if statuses > limits.max_containers {
        return Err(ApiError::PayloadTooLarge(format!(
            "The report lists {statuses} containers; at most {} are accepted in one report (CROWSNEST_REPORT_MAX_CONTAINERS).",
            limits.max_containers
        )));
    }
    if !POD_LIST_KINDS.contains(&pods.kind.as_str()) {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            format!(
                "Expected a PodList (kind List or PodList), got kind '{}'.",
                pods.kind
            ),
        ));
    }
    let now = Timestamp::now().micros();
    let sub = subscription.as_str().to_owned();
    let cluster = path.cluster.clone();
    let mut rows = Vec::new();
    let mut without_digest = 0;
    for pod in &pods.items {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let statuses = pod
            .status
            .container_statuses
            .iter()
            .chain(&pod.status.init_container_statuses)
            .chain(&pod.status.ephemeral_container_statuses);
        for status in statuses {
            let pulled = parse_image_id(&status.image_id);
            if pulled.is_none() {
                without_digest += 1;
            }
            rows.push(RunningImageRow {
                subscription_id: sub.clone(),
                cluster: cluster.clone(),
                namespace: namespace.clone(),
                pod: pod.metadata.name.clone(),
                container: status.name.clone(),
                image: status.image.clone(),
                registry: pulled.as_ref().map(|p| p.registry.clone()),
                repository: pulled.as_ref().map(|p| p.repository.clone()),
                digest: pulled.map(|p| p.digest),
                reported_at: now,
            });
        }
    }
    // A pod listed twice (two reports merged by hand) keeps its first entry.
    let mut seen = BTreeSet::new();
    rows.retain(|r| seen.insert((r.namespace.clone(), r.pod.clone(), r.container.clone())));
    let containers = rows.len();
    let report = running_images::Report {
        subscription: sub,
        cluster,
        rows,
    };
    let outcome = running_images::report(&state.pool, &state.queue, report, limits).await?;
    tracing::info!(cluster = %path.cluster, containers, images = outcome.images, scans_queued = outcome.scans_queued, scans_deferred = outcome.scans_deferred, scans_cancelled = outcome.scans_cancelled, by = %caller.subject, "running images reported");
    Ok(web::Json(RunningImagesReport {
        cluster: path.cluster.clone(),
        containers,
        images: outcome.images,
        from_connected_registries: outcome.connected,
        scans_queued: outcome.scans_queued,
        scans_deferred: outcome.scans_deferred,
        scans_cancelled: outcome.scans_cancelled,
        unconnected_registries: outcome.unconnected,
        without_digest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn image_ids_in_their_runtime_spellings() {
        let cases = [
            (
                format!("docker-pullable://registry.example.com:5000/team/api@{D}"),
                Some(("registry.example.com:5000", "team/api")),
            ),
            (
                format!("docker.io/library/nginx@{D}"),
                Some(("docker.io", "library/nginx")),
            ),
            (format!("nginx@{D}"), Some(("docker.io", "library/nginx"))),
            (
                format!("bitnami/redis@{D}"),
                Some(("docker.io", "bitnami/redis")),
            ),
            (format!("localhost/app@{D}"), Some(("localhost", "app"))),
            (
                format!("127.0.0.1:5000/app:1.0@{D}"),
                Some(("127.0.0.1:5000", "app")),
            ),
            // containerd before the pull finished, and image ids without a repository digest.
            (String::new(), None),
            (D.to_owned(), None),
            ("docker://sha256:abc".to_owned(), None),
        ];
        for (input, expected) in cases {
            let got = parse_image_id(&input);
            assert_eq!(
                got.as_ref()
                    .map(|p| (p.registry.as_str(), p.repository.as_str())),
                expected,
                "{input}"
            );
            if let Some(p) = got {
                assert_eq!(p.digest, D);
            }
        }
    }

    #[test]
    fn cluster_names() {
        assert!(valid_cluster("prod-eu.1_a"));
        assert!(!valid_cluster(""));
        assert!(!valid_cluster("a/b"));
        assert!(!valid_cluster(&"x".repeat(64)));
    }
}
