//! The registry client against a REAL Distribution 2.8 registry (Debian `docker-registry`), one
//! test per auth mode: push the fixture Alpine image and an OCI multi-arch index with the
//! harness, then resolve both and stream every layer through the client, checking digests.

use std::time::Duration;

use crowsnest::domain::RegistryCredentials;
use crowsnest::scanner::registry::{
    Backoff, ClientConfig, ImageReference, OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError,
};
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;

use crate::support::fixtures::{fixture_image_alpine, push_fixture_multiarch};
use crate::support::images::{MediaKind, Platform, sha256_digest};
use crate::support::registry::client::{IndexKind, pull_scope, push_image};
use crate::support::registry::{RegistryAuth, TestRegistry};

fn client_for(reg: &TestRegistry, credentials: Option<RegistryCredentials>) -> RegistryClient {
    let config = ClientConfig {
        insecure: true,
        credentials,
        retries: 1,
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(100),
        },
        ..ClientConfig::default()
    };
    RegistryClient::new(&reg.host(), config).unwrap()
}

fn basic_creds(reg: &TestRegistry) -> Option<RegistryCredentials> {
    reg.credentials().map(|(u, p)| RegistryCredentials::Basic {
        username: u.into(),
        password: p.into(),
    })
}

const WRONG_PASSWORD: &str = "wrong-password-123";

/// The error a client with `credentials` gets for the pushed Alpine manifest.
async fn refusal(reg: &TestRegistry, credentials: Option<RegistryCredentials>) -> RegistryError {
    client_for(reg, credentials)
        .manifest("test/alpine", "3.18")
        .await
        .unwrap_err()
}

fn wrong_password() -> Option<RegistryCredentials> {
    Some(RegistryCredentials::Basic {
        username: "crowsnest".into(),
        password: WRONG_PASSWORD.into(),
    })
}

/// Push both fixtures, resolve them with `client`, stream every layer and check digests.
async fn push_resolve_and_stream(reg: &TestRegistry, client: &RegistryClient) {
    let alpine = fixture_image_alpine(MediaKind::Oci, Platform::linux_amd64());
    let pushed = push_image(reg, "test/alpine", Some("3.18"), &alpine).await;
    let (index, children) =
        push_fixture_multiarch(reg, "test/multiarch", "3.18", IndexKind::OciIndex).await;

    // Single image by tag and by digest.
    for rest in [
        "test/alpine:3.18".to_string(),
        format!("test/alpine@{}", pushed.manifest_digest),
    ] {
        let r = ImageReference::parse(&format!("{}/{rest}", reg.host())).unwrap();
        let resolved = client.resolve(&r).await.unwrap();
        assert_eq!(resolved.index_digest, None);
        assert!(resolved.skipped.is_empty(), "{:?}", resolved.skipped);
        assert_eq!(resolved.images.len(), 1);
        let img = &resolved.images[0];
        assert_eq!(img.manifest_digest.as_str(), pushed.manifest_digest);
        assert_eq!(img.media_type, OCI_MANIFEST);
        assert_eq!(img.manifest_bytes, pushed.manifest_bytes);
        assert_eq!(img.config.digest.as_str(), pushed.config_digest);
        assert_eq!(img.config_bytes, pushed.config_bytes);
        assert_eq!(img.platform.to_string(), "linux/amd64");
        let layer_digests: Vec<&str> = img.layers.iter().map(|l| l.digest.as_str()).collect();
        assert_eq!(layer_digests, pushed.layer_digests);
        stream_layers(client, "test/alpine", img).await;
    }

    // The OCI index: both linux children.
    let r = ImageReference::parse(&format!("{}/test/multiarch:3.18", reg.host())).unwrap();
    let m = client.manifest("test/multiarch", "3.18").await.unwrap();
    assert_eq!(m.media_type, OCI_INDEX);
    assert_eq!(m.digest.as_str(), index.digest);
    let resolved = client.resolve(&r).await.unwrap();
    assert_eq!(
        resolved.index_digest.as_ref().map(|d| d.as_str()),
        Some(index.digest.as_str())
    );
    assert!(resolved.skipped.is_empty());
    let got: Vec<&str> = resolved
        .images
        .iter()
        .map(|i| i.manifest_digest.as_str())
        .collect();
    let want: Vec<&str> = children
        .iter()
        .map(|c| c.manifest_digest.as_str())
        .collect();
    assert_eq!(got, want);
    let platforms: Vec<String> = resolved
        .images
        .iter()
        .map(|i| i.platform.to_string())
        .collect();
    assert_eq!(platforms[0], "linux/amd64");
    assert!(platforms[1].starts_with("linux/arm64"), "{platforms:?}");
    for (img, child) in resolved.images.iter().zip(&children) {
        assert_eq!(img.config.digest.as_str(), child.config_digest);
        stream_layers(client, "test/multiarch", img).await;
    }

    // Unknown tag / blob.
    let e = client.manifest("test/alpine", "nope").await.unwrap_err();
    assert_eq!(e.code(), "ManifestNotFound", "{e}");
    let missing = crowsnest::domain::Digest::parse(&sha256_digest(b"missing")).unwrap();
    let e = client.blob("test/alpine", &missing).await.unwrap_err();
    assert_eq!(e.code(), "BlobNotFound", "{e}");
}

async fn stream_layers(
    client: &RegistryClient,
    repo: &str,
    img: &crowsnest::scanner::registry::ResolvedImage,
) {
    assert!(!img.layers.is_empty());
    for layer in &img.layers {
        let stream = client.blob_for(repo, layer).await.unwrap();
        let mut reader = stream.into_async_read();
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 8192];
        let mut n = 0u64;
        loop {
            let k = reader.read(&mut buf).await.unwrap();
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        assert_eq!(n, layer.size);
        assert_eq!(
            format!("sha256:{}", hex::encode(hasher.finalize())),
            layer.digest.as_str()
        );
    }
}

#[tokio::test]
async fn real_registry_anonymous() {
    let reg = TestRegistry::start(RegistryAuth::None);
    let client = client_for(&reg, None);
    push_resolve_and_stream(&reg, &client).await;
}

#[tokio::test]
async fn real_registry_basic_auth() {
    let reg = TestRegistry::start(RegistryAuth::basic_default());
    let client = client_for(&reg, basic_creds(&reg));
    push_resolve_and_stream(&reg, &client).await;

    let e = refusal(&reg, None).await;
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
    let e = refusal(&reg, wrong_password()).await;
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
    assert!(!e.to_string().contains(WRONG_PASSWORD));
}

#[tokio::test]
async fn real_registry_token_auth() {
    let reg = TestRegistry::start(RegistryAuth::token_default());
    let client = client_for(&reg, basic_creds(&reg));
    push_resolve_and_stream(&reg, &client).await;
    let issued = reg.token_server().unwrap().issued();
    assert!(
        issued
            .iter()
            .any(|t| t.scopes.contains(&pull_scope("test/alpine"))),
        "the client asked for repository:test/alpine:pull"
    );

    // A bearer token obtained elsewhere (RegistryCredentials::Token) is sent directly.
    let ts = reg.token_server().unwrap();
    let token = reg
        .client()
        .fetch_token(
            &ts.realm(),
            crate::support::registry::TOKEN_SERVICE,
            &pull_scope("test/alpine"),
        )
        .await
        .unwrap();
    let direct = client_for(&reg, Some(RegistryCredentials::Token { token }));
    let r = ImageReference::parse(&format!("{}/test/alpine:3.18", reg.host())).unwrap();
    let resolved = direct.resolve(&r).await.unwrap();
    assert_eq!(resolved.images.len(), 1);

    // Anonymous tokens carry no access on this token server: 401 after the token → Unauthorized.
    let e = refusal(&reg, None).await;
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
    // Wrong password: the token service refuses.
    let e = refusal(&reg, wrong_password()).await;
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
    assert!(e.to_string().contains("token service"), "{e}");
}
