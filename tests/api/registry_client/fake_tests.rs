//! The registry client against the in-process fake registry, with fault injection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crowsnest::domain::{Digest, RegistryCredentials};
use crowsnest::scanner::registry::{
    Backoff, ClientConfig, ImageReference, Limits, ManifestKind, RegistryClient, RegistryError,
    Timeouts,
};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use crate::support::fake_registry::*;

const REPO: &str = "team/app";

fn config(creds: Option<RegistryCredentials>) -> ClientConfig {
    ClientConfig {
        insecure: true,
        credentials: creds,
        retries: 2,
        backoff: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(50),
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
            read_idle: Duration::from_secs(5),
        },
        ..ClientConfig::default()
    }
}

fn client(fake: &Fake, creds: Option<RegistryCredentials>) -> RegistryClient {
    RegistryClient::new(&fake.host(), config(creds)).unwrap()
}

fn basic(u: &str, p: &str) -> Option<RegistryCredentials> {
    Some(RegistryCredentials::Basic {
        username: u.into(),
        password: p.into(),
    })
}

fn reference(fake: &Fake, rest: &str) -> ImageReference {
    ImageReference::parse(&format!("{}/{rest}", fake.host())).unwrap()
}

fn digest(s: &str) -> Digest {
    Digest::parse(s).unwrap()
}

async fn read_all(stream: crowsnest::scanner::registry::BlobStream) -> std::io::Result<Vec<u8>> {
    let mut r = stream.into_async_read();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

fn io_code(e: &std::io::Error) -> &'static str {
    RegistryError::from_io(e)
        .map(|e| e.code())
        .unwrap_or("not a RegistryError")
}

#[tokio::test]
async fn anonymous_oci_image_manifest_resolve_and_blobs() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let c = client(&fake, None);

    let m = c.manifest(REPO, "v1").await.unwrap();
    assert_eq!(m.digest.as_str(), img.digest);
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(m.bytes, img.manifest);
    let ManifestKind::Image { config, layers } = &m.kind else {
        panic!("expected an image")
    };
    assert_eq!(config.digest.as_str(), img.config_digest);
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].size, img.layer.len() as u64);
    // The Accept header names all four manifest types.
    let accept = fake.requests()[0].header("accept").unwrap().to_string();
    for mt in [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        "manifest.list.v2+json",
    ] {
        assert!(accept.contains(mt), "{accept}");
    }
    // By digest too.
    let by_digest = c.manifest(REPO, &img.digest).await.unwrap();
    assert_eq!(by_digest.digest.as_str(), img.digest);

    let r = c.resolve(&reference(&fake, "team/app:v1")).await.unwrap();
    assert_eq!(r.index_digest, None);
    assert!(r.skipped.is_empty());
    assert_eq!(r.images.len(), 1);
    let image = &r.images[0];
    assert_eq!(image.platform.to_string(), "linux/amd64");
    assert_eq!(image.manifest_digest.as_str(), img.digest);
    assert_eq!(sha256(&image.config_bytes), img.config_digest);

    // Stream the layer (async), hashing as a caller would.
    let s = c.blob_for(REPO, &image.layers[0]).await.unwrap();
    assert_eq!(s.size(), Some(img.layer.len() as u64));
    let bytes = read_all(s).await.unwrap();
    assert_eq!(sha256(&bytes), img.layer_digest);
    // From sync code, as the layer reader does.
    let s = c
        .blob(REPO, &digest(&img.layer_digest))
        .await
        .unwrap()
        .verify_digest();
    let bytes = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut sync = tokio_util::io::SyncIoBridge::new(s.into_async_read());
        let mut out = Vec::new();
        sync.read_to_end(&mut out).map(|_| out)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(bytes, img.layer);
    // Small verified blob.
    let cfg = c
        .blob_bytes(REPO, &digest(&img.config_digest), 1 << 20)
        .await
        .unwrap();
    assert_eq!(sha256(&cfg), img.config_digest);
    // No Authorization header was ever sent.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[tokio::test]
async fn anonymous_docker_v2_manifest() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image("library/alpine", Some("3.19"), true, "linux", "arm64");
    let c = client(&fake, None);
    let m = c.manifest("library/alpine", "3.19").await.unwrap();
    assert_eq!(m.media_type, DOCKER_MANIFEST);
    let r = c
        .resolve(&reference(&fake, "library/alpine:3.19"))
        .await
        .unwrap();
    assert_eq!(r.images.len(), 1);
    assert_eq!(r.images[0].media_type, DOCKER_MANIFEST);
    assert_eq!(r.images[0].config.media_type, DOCKER_CONFIG);
    assert_eq!(r.images[0].platform.architecture, "arm64");
    assert_eq!(r.images[0].layers[0].digest.as_str(), img.layer_digest);
}

#[tokio::test]
async fn oci_index_linux_children_resolved_windows_skipped() {
    let fake = Fake::start(FakeAuth::None).await;
    let amd = fake.put_image(REPO, None, false, "linux", "amd64");
    let arm = fake.put_image(REPO, None, false, "linux", "arm64");
    let win = fake.put_image(REPO, None, false, "windows", "amd64");
    let entry = |p: &PushedFake, os: &str, arch: &str, variant: Option<&str>| {
        let mut plat = json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            plat["variant"] = json!(v);
        }
        json!({"mediaType": OCI_MANIFEST, "digest": p.digest, "size": p.manifest.len(), "platform": plat})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            entry(&amd, "linux", "amd64", None),
            entry(&arm, "linux", "arm64", Some("v8")),
            entry(&win, "windows", "amd64", None),
        ],
    }))
    .unwrap();
    let index_digest = fake.put_manifest(REPO, Some("multi"), OCI_INDEX, &index);
    let c = client(&fake, None);

    let m = c.manifest(REPO, "multi").await.unwrap();
    assert!(matches!(&m.kind, ManifestKind::Index { manifests } if manifests.len() == 3));

    let r = c
        .resolve(&reference(&fake, "team/app:multi"))
        .await
        .unwrap();
    assert_eq!(r.index_digest.as_ref().unwrap().as_str(), index_digest);
    let got: Vec<(String, String)> = r
        .images
        .iter()
        .map(|i| (i.platform.to_string(), i.manifest_digest.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("linux/amd64".to_string(), amd.digest.clone()),
            ("linux/arm64/v8".to_string(), arm.digest.clone()),
        ]
    );
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].platform, "windows/amd64");
    assert_eq!(r.skipped[0].digest.as_str(), win.digest);
    assert!(
        r.skipped[0].reason.contains("not linux"),
        "{}",
        r.skipped[0].reason
    );
    // The windows child was never fetched.
    assert!(
        !fake
            .requests()
            .iter()
            .any(|q| q.target.contains(&win.digest))
    );
    // By index digest as well.
    let r2 = c
        .resolve(&reference(&fake, &format!("team/app@{index_digest}")))
        .await
        .unwrap();
    assert_eq!(r2.images.len(), 2);
}

#[tokio::test]
async fn basic_auth_right_and_wrong_credentials() {
    let fake = Fake::start(FakeAuth::Basic {
        user: "scanner".into(),
        password: "s3cret-pw".into(),
    })
    .await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");

    let good = client(&fake, basic("scanner", "s3cret-pw"));
    let r = good
        .resolve(&reference(&fake, "team/app:v1"))
        .await
        .unwrap();
    assert_eq!(r.images[0].manifest_digest.as_str(), img.digest);
    let bytes = read_all(good.blob_for(REPO, &r.images[0].layers[0]).await.unwrap())
        .await
        .unwrap();
    assert_eq!(bytes, img.layer);
    // One anonymous probe, then Basic on every request.
    let reqs = fake.requests();
    assert!(reqs[0].header("authorization").is_none());
    assert!(
        reqs[1..]
            .iter()
            .all(|q| q.header("authorization").unwrap().starts_with("Basic "))
    );

    let bad = client(&fake, basic("scanner", "wrong-pw"));
    let e = bad.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&fake.host()) && msg.contains(REPO), "{msg}");
    assert!(!msg.contains("wrong-pw"), "{msg}");
    assert!(!format!("{e:?}").contains("wrong-pw"));
    assert!(
        !format!("{bad:?}").contains("wrong-pw"),
        "client Debug leaks"
    );

    let anon = client(&fake, None);
    let e = anon.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnauthorized");
    assert!(e.to_string().contains("no credentials"), "{e}");
}

fn bearer_auth() -> FakeAuth {
    FakeAuth::Bearer {
        user: "scanner".into(),
        password: "tok-pw".into(),
        anonymous: false,
        identity_token: Some("identity-abc".into()),
        static_token: Some("static-xyz".into()),
    }
}

#[tokio::test]
async fn bearer_token_flow_with_basic_credentials() {
    let fake = Fake::start(bearer_auth()).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let c = client(&fake, basic("scanner", "tok-pw"));
    let r = c.resolve(&reference(&fake, "team/app:v1")).await.unwrap();
    let layer = read_all(c.blob_for(REPO, &r.images[0].layers[0]).await.unwrap())
        .await
        .unwrap();
    assert_eq!(sha256(&layer), img.layer_digest);

    let toks = fake.token_requests();
    assert_eq!(toks.len(), 1, "token cached per scope");
    let q = toks[0].query();
    assert!(q.contains(&("service".into(), SERVICE.into())), "{q:?}");
    assert!(
        q.contains(&("scope".into(), format!("repository:{REPO}:pull"))),
        "{q:?}"
    );
    assert!(
        toks[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(
        fake.requests()
            .iter()
            .filter(|q| q.path().starts_with("/v2/"))
            .skip(1)
            .all(|q| q.header("authorization") == Some("Bearer tok-1"))
    );

    // Another repository needs another scope, hence another token.
    fake.put_image("other/repo", Some("x"), false, "linux", "amd64");
    c.manifest("other/repo", "x").await.unwrap();
    let toks = fake.token_requests();
    assert_eq!(toks.len(), 2);
    assert!(
        toks[1]
            .query()
            .contains(&("scope".into(), "repository:other/repo:pull".into()))
    );

    // Wrong password: the token service refuses.
    let bad = client(&fake, basic("scanner", "nope-pw"));
    let e = bad.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
    assert!(e.to_string().contains("token service"), "{e}");
    assert!(!e.to_string().contains("nope-pw"));

    // No credentials and no anonymous tokens.
    let e = client(&fake, None).manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnauthorized", "{e}");
}

#[tokio::test]
async fn bearer_token_flow_anonymous_and_token_credentials() {
    let mut auth = bearer_auth();
    if let FakeAuth::Bearer { anonymous, .. } = &mut auth {
        *anonymous = true;
    }
    let fake = Fake::start(auth).await;
    fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    // Anonymous token.
    client(&fake, None).manifest(REPO, "v1").await.unwrap();
    assert!(fake.token_requests()[0].header("authorization").is_none());

    // A token the registry accepts directly: no token request.
    let n = fake.token_requests().len();
    let direct = client(
        &fake,
        Some(RegistryCredentials::Token {
            token: "static-xyz".into(),
        }),
    );
    direct.manifest(REPO, "v1").await.unwrap();
    assert_eq!(fake.token_requests().len(), n);

    // An identity token: refused as bearer, exchanged with the OAuth2 refresh grant.
    let ident = client(
        &fake,
        Some(RegistryCredentials::Token {
            token: "identity-abc".into(),
        }),
    );
    ident
        .resolve(&reference(&fake, "team/app:v1"))
        .await
        .unwrap();
    let last = fake.token_requests().last().cloned().unwrap();
    assert_eq!(last.method, "POST");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&last.body)
        .into_owned()
        .collect();
    assert!(form.contains(&("grant_type".into(), "refresh_token".into())));
    assert!(form.contains(&("scope".into(), format!("repository:{REPO}:pull"))));

    // A bad token is refused everywhere.
    let bad = client(
        &fake,
        Some(RegistryCredentials::Token {
            token: "garbage-token".into(),
        }),
    );
    let e = bad.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnauthorized");
    assert!(!e.to_string().contains("garbage-token"), "{e}");
}

#[tokio::test]
async fn unauthorized_without_challenge() {
    let fake = Fake::start(FakeAuth::NoChallenge).await;
    let e = client(&fake, basic("a", "b"))
        .manifest(REPO, "v1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "RegistryUnauthorized");
    assert!(e.to_string().contains("without a WWW-Authenticate"), "{e}");
}

#[tokio::test]
async fn not_found_manifest_and_blob() {
    let fake = Fake::start(FakeAuth::None).await;
    let c = client(&fake, None);
    let e = c.manifest(REPO, "missing").await.unwrap_err();
    assert_eq!(e.code(), "ManifestNotFound");
    assert!(
        e.to_string().contains("missing") && e.to_string().contains(REPO),
        "{e}"
    );
    let d = digest(&sha256(b"nothing"));
    let e = c.blob(REPO, &d).await.unwrap_err();
    assert_eq!(e.code(), "BlobNotFound");
    assert!(e.to_string().contains(d.as_str()), "{e}");
    let e = c
        .resolve(&reference(&fake, "team/app:gone"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ManifestNotFound");
}

#[tokio::test]
async fn too_many_requests_then_success_honours_retry_after() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    fake.set_hook(move |_| {
        (n2.fetch_add(1, Ordering::SeqCst) < 2).then(|| Resp::new(429).header("Retry-After", "0"))
    });
    let m = client(&fake, None).manifest(REPO, "v1").await.unwrap();
    assert_eq!(m.digest.as_str(), img.digest);
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn too_many_requests_forever() {
    let fake = Fake::start(FakeAuth::None).await;
    fake.set_hook(|_| Some(Resp::new(429).header("Retry-After", "0")));
    let e = client(&fake, None).manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "TooManyRequests", "{e}");
    assert_eq!(fake.requests().len(), 3, "1 + 2 retries");
}

#[tokio::test]
async fn server_error_forever_is_unavailable_after_retries() {
    let fake = Fake::start(FakeAuth::None).await;
    fake.set_hook(|_| Some(Resp::new(500)));
    let started = std::time::Instant::now();
    let e = client(&fake, None).manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnavailable", "{e}");
    assert!(
        e.to_string().contains("500") && e.to_string().contains("3 attempt"),
        "{e}"
    );
    assert_eq!(fake.requests().len(), 3);
    assert!(started.elapsed() < Duration::from_secs(2));
    // 503 on a blob too, then success.
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    fake.set_hook(move |q| {
        (q.path().contains("/blobs/") && n2.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| Resp::new(503))
    });
    let s = client(&fake, None)
        .blob(REPO, &digest(&img.layer_digest))
        .await
        .unwrap();
    assert_eq!(read_all(s).await.unwrap(), img.layer);
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = RegistryClient::new(&format!("127.0.0.1:{port}"), config(None)).unwrap();
    let e = c.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnavailable", "{e}");
    assert!(e.to_string().contains("connection"), "{e}");
}

#[tokio::test]
async fn manifest_digest_mismatch() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    // Serve other bytes under the requested digest.
    let other = fake.put_image(REPO, None, false, "linux", "arm64");
    let tampered = other.manifest.clone();
    fake.state.lock().unwrap().manifests.insert(
        (REPO.into(), img.digest.clone()),
        (OCI_MANIFEST.into(), tampered),
    );
    let c = client(&fake, None);
    let e = c.manifest(REPO, &img.digest).await.unwrap_err();
    assert_eq!(e.code(), "DigestMismatch", "{e}");
    assert!(
        e.to_string().contains(&img.digest) && e.to_string().contains(&other.digest),
        "{e}"
    );

    // By tag: a wrong Docker-Content-Digest header.
    let body = img.manifest.clone();
    fake.set_hook(move |q| {
        q.path().ends_with("/manifests/v1").then(|| {
            Resp::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .header("Docker-Content-Digest", &sha256(b"not it"))
                .body(body.clone())
        })
    });
    let e = c.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "DigestMismatch", "{e}");

    // An index child whose bytes do not match the index's digest.
    let fake = Fake::start(FakeAuth::None).await;
    let child = fake.put_image(REPO, None, false, "linux", "amd64");
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": child.manifest.len(),
         "platform": {"os": "linux", "architecture": "amd64"}}]}),
    )
    .unwrap();
    fake.put_manifest(REPO, Some("idx"), OCI_INDEX, &index);
    let mut evil = child.manifest.clone();
    evil.push(b' ');
    fake.state.lock().unwrap().manifests.insert(
        (REPO.into(), child.digest.clone()),
        (OCI_MANIFEST.into(), evil),
    );
    let e = client(&fake, None)
        .resolve(&reference(&fake, "team/app:idx"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "DigestMismatch", "{e}");

    // A blob whose bytes do not match (blob_bytes verifies).
    let fake = Fake::start(FakeAuth::None).await;
    let d = sha256(b"expected");
    fake.state
        .lock()
        .unwrap()
        .blobs
        .insert((REPO.into(), d.clone()), b"tampered".to_vec());
    let e = client(&fake, None)
        .blob_bytes(REPO, &digest(&d), 1024)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "DigestMismatch", "{e}");
}

#[tokio::test]
async fn manifest_too_large_with_and_without_content_length() {
    let fake = Fake::start(FakeAuth::None).await;
    let big = vec![b' '; 10_000];
    for (tag, framing) in [("cl", Framing::Exact), ("nocl", Framing::CloseDelimited)] {
        let body = big.clone();
        fake.set_hook(move |_| {
            Some(
                Resp::new(200)
                    .header("Content-Type", OCI_MANIFEST)
                    .body(body.clone())
                    .framing(framing.clone()),
            )
        });
        let mut cfg = config(None);
        cfg.limits = Limits {
            max_manifest_bytes: 4096,
            ..Limits::default()
        };
        let c = RegistryClient::new(&fake.host(), cfg).unwrap();
        let e = c.manifest(REPO, tag).await.unwrap_err();
        assert_eq!(e.code(), "ManifestTooLarge", "{tag}: {e}");
        assert!(e.to_string().contains("4096"), "{e}");
    }
    // Exactly at the limit is fine.
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let mut cfg = config(None);
    cfg.limits.max_manifest_bytes = img.manifest.len() as u64;
    let c = RegistryClient::new(&fake.host(), cfg).unwrap();
    c.manifest(REPO, "v1").await.unwrap();
}

#[tokio::test]
async fn too_many_layers_and_declared_layer_too_large() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let mut cfg = config(None);
    cfg.limits.max_layers = 0;
    let e = RegistryClient::new(&fake.host(), cfg)
        .unwrap()
        .manifest(REPO, "v1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "TooManyLayers", "{e}");

    let mut cfg = config(None);
    cfg.limits.max_layer_bytes = img.layer.len() as u64 - 1;
    let e = RegistryClient::new(&fake.host(), cfg)
        .unwrap()
        .manifest(REPO, "v1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "LayerTooLarge", "{e}");
    assert!(e.to_string().contains(&img.layer_digest), "{e}");
}

#[tokio::test]
async fn blob_shorter_than_declared_is_an_error() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let c = client(&fake, None);
    let m = c.manifest(REPO, "v1").await.unwrap();
    let ManifestKind::Image { layers, .. } = m.kind else {
        panic!()
    };
    let short = img.layer[..1000].to_vec();

    // Content-Length says more than is sent.
    let full_len = img.layer.len() as u64;
    let body = short.clone();
    fake.set_hook(move |q| {
        q.path().contains("/blobs/").then(|| {
            Resp::new(200)
                .body(body.clone())
                .framing(Framing::Declared(full_len))
        })
    });
    let e = read_all(c.blob(REPO, &layers[0].digest).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(io_code(&e), "BlobSizeMismatch", "{e}");

    // No Content-Length: the descriptor's size catches it.
    let body = short.clone();
    fake.set_hook(move |q| {
        q.path().contains("/blobs/").then(|| {
            Resp::new(200)
                .body(body.clone())
                .framing(Framing::CloseDelimited)
        })
    });
    let mut s = c.blob_for(REPO, &layers[0]).await.unwrap();
    let mut n = 0;
    let mut err = None;
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => n += b.len(),
            Err(e) => err = Some(e),
        }
    }
    assert_eq!(n, 1000);
    let err = err.expect("a short body must fail");
    assert_eq!(err.code(), "BlobSizeMismatch", "{err}");
    assert!(
        err.to_string().contains("received 1000") && err.to_string().contains(&img.layer_digest),
        "{err}"
    );

    // Consistent but wrong Content-Length vs. descriptor (longer body than the descriptor).
    let body = [img.layer.clone(), b"extra".to_vec()].concat();
    fake.set_hook(move |q| {
        q.path()
            .contains("/blobs/")
            .then(|| Resp::new(200).body(body.clone()))
    });
    let e = read_all(c.blob_for(REPO, &layers[0]).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(io_code(&e), "BlobSizeMismatch", "{e}");
}

#[tokio::test]
async fn blob_larger_than_limit() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let mut cfg = config(None);
    cfg.limits.max_layer_bytes = 1024;
    let c = RegistryClient::new(&fake.host(), cfg).unwrap();
    let d = digest(&img.layer_digest);

    // Content-Length over the limit: refused before reading.
    let e = c.blob(REPO, &d).await.unwrap_err();
    assert_eq!(e.code(), "LayerTooLarge", "{e}");

    // Without Content-Length: the stream fails once past the limit (not a truncation).
    let body = img.layer.clone();
    fake.set_hook(move |q| {
        q.path().contains("/blobs/").then(|| {
            Resp::new(200)
                .body(body.clone())
                .framing(Framing::CloseDelimited)
        })
    });
    let s = c.blob(REPO, &d).await.unwrap();
    let e = read_all(s).await.unwrap_err();
    assert_eq!(io_code(&e), "LayerTooLarge", "{e}");

    // A descriptor declaring more than the limit: no request at all.
    let before = fake.requests().len();
    let desc = crowsnest::scanner::registry::Descriptor {
        media_type: OCI_LAYER.into(),
        digest: d.clone(),
        size: 5000,
    };
    let e = c.blob_for(REPO, &desc).await.unwrap_err();
    assert_eq!(e.code(), "LayerTooLarge");
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn https_required_unless_insecure() {
    let fake = Fake::start(FakeAuth::None).await;
    fake.put_image(REPO, Some("v1"), false, "linux", "amd64");
    let mut cfg = config(None);
    cfg.insecure = false;
    cfg.retries = 0;
    // An https client cannot talk to the plain-HTTP fake.
    let c = RegistryClient::new(&fake.host(), cfg.clone()).unwrap();
    let e = c.manifest(REPO, "v1").await.unwrap_err();
    assert_eq!(e.code(), "RegistryUnavailable", "{e}");
    assert!(e.to_string().contains("insecure"), "{e}");
    // http:// is refused outright.
    let e = RegistryClient::new(&format!("http://{}", fake.host()), cfg).unwrap_err();
    assert_eq!(e.code(), "InvalidReference");
    assert!(e.to_string().contains("insecure"), "{e}");
    // With insecure, http:// works.
    let c = RegistryClient::new(&format!("http://{}/", fake.host()), config(None)).unwrap();
    c.manifest(REPO, "v1").await.unwrap();
}

#[tokio::test]
async fn invalid_arguments_are_rejected_before_any_request() {
    let fake = Fake::start(FakeAuth::None).await;
    let c = client(&fake, None);
    for bad_repo in ["Team/App", "a//b", "", "../x"] {
        let e = c.manifest(bad_repo, "v1").await.unwrap_err();
        assert_eq!(e.code(), "InvalidReference", "{bad_repo}: {e}");
    }
    for bad_ref in ["sha256:abc", "-tag", "a b"] {
        let e = c.manifest(REPO, bad_ref).await.unwrap_err();
        assert_eq!(e.code(), "InvalidReference", "{bad_ref}: {e}");
    }
    let e = c
        .resolve(&ImageReference::parse("other.example.com/team/app:v1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "InvalidReference");
    assert!(e.to_string().contains("other.example.com"), "{e}");
    assert!(fake.requests().is_empty());
    for bad in ["ftp://x.io", "x.io/path", "user@x.io", "bad_host.io"] {
        assert!(RegistryClient::new(bad, config(None)).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn unsupported_and_invalid_manifests() {
    let fake = Fake::start(FakeAuth::None).await;
    fake.put_manifest(
        REPO,
        Some("v1s1"),
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        br#"{"schemaVersion":1,"name":"team/app","tag":"v1s1","fsLayers":[]}"#,
    );
    fake.put_manifest(REPO, Some("junk"), OCI_MANIFEST, b"{not json");
    // A Helm chart: an image manifest whose config is not an image config.
    let chart_cfg = fake.put_blob(REPO, b"{}");
    let chart = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": chart_cfg, "size": 2},
        "layers": []}))
    .unwrap();
    fake.put_manifest(REPO, Some("chart"), OCI_MANIFEST, &chart);
    let c = client(&fake, None);
    // The fake only serves types named in Accept, so v1 is served under a hook.
    let body = br#"{"schemaVersion":1,"name":"team/app","tag":"v1s1","fsLayers":[]}"#.to_vec();
    fake.set_hook(move |q| {
        q.path().ends_with("/v1s1").then(|| {
            Resp::new(200)
                .header(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                )
                .body(body.clone())
        })
    });
    let e = c.manifest(REPO, "v1s1").await.unwrap_err();
    assert_eq!(e.code(), "UnsupportedMediaType", "{e}");
    let e = c.manifest(REPO, "junk").await.unwrap_err();
    assert_eq!(e.code(), "InvalidManifest", "{e}");
    let e = c
        .resolve(&reference(&fake, "team/app:chart"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "UnsupportedMediaType", "{e}");
    assert!(e.to_string().contains("helm"), "{e}");
}

#[tokio::test]
async fn single_windows_image_is_skipped() {
    let fake = Fake::start(FakeAuth::None).await;
    let img = fake.put_image(REPO, Some("win"), true, "windows", "amd64");
    let r = client(&fake, None)
        .resolve(&reference(&fake, "team/app:win"))
        .await
        .unwrap();
    assert!(r.images.is_empty());
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].platform, "windows/amd64");
    assert_eq!(r.skipped[0].digest.as_str(), img.digest);
}
