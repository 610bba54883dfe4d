//! The URL a connected registry sends its notifications to.

use super::api_version;

/// `registry_id` is the registry's resource id (`/subscriptions/…/registries/{name}`).
pub fn url(public_url: &url::Url, registry_id: &str) -> String {
    format!(
        "{}{registry_id}/providers/Microsoft.Security/registryEvents?api-version={}",
        public_url.as_str().trim_end_matches('/'),
        api_version::CROWSNEST
    )
}
