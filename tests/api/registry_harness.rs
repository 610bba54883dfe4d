//! The test harness against a real Distribution 2.8 registry (Debian `docker-registry`): images built
//! by hand are pushed and pulled back in each auth mode; notifications arrive.

use std::time::{Duration, Instant};

use crate::support::fixtures::*;
use crate::support::images::*;
use crate::support::registry::client::*;
use crate::support::registry::notifications::*;
use crate::support::registry::*;
use reqwest::StatusCode;
use serde_json::Value;

/// Pull `pushed` back (manifest by tag and by digest, HEAD, config, every layer), verify all
/// digests/sizes/diff_ids and that the pulled layers flatten to the same filesystem.
async fn verify_pull(client: &RegistryClient, pushed: &PushedImage, image: &Image) {
    let repo = &pushed.repo;
    let mut refs = vec![pushed.manifest_digest.clone()];
    refs.extend(pushed.tag.clone());
    for reference in &refs {
        let m = client.get_manifest(repo, reference).await;
        assert_eq!(m.status, StatusCode::OK, "GET manifest {repo}:{reference}");
        assert_eq!(m.bytes, pushed.manifest_bytes, "manifest bytes round-trip");
        assert_eq!(m.content_type, pushed.manifest_media_type);
        assert_eq!(m.digest, pushed.manifest_digest);
        let h = client.head_manifest(repo, reference).await;
        assert_eq!(h.status, StatusCode::OK, "HEAD manifest {repo}:{reference}");
        assert_eq!(h.digest, pushed.manifest_digest);
    }
    let manifest: Value = serde_json::from_slice(&pushed.manifest_bytes).unwrap();
    assert_eq!(manifest["mediaType"], pushed.manifest_media_type.as_str());
    assert_eq!(manifest["config"]["digest"], pushed.config_digest.as_str());
    assert_eq!(manifest["config"]["mediaType"], image.config_media_type());

    let config_bytes = client.get_blob(repo, &pushed.config_digest).await;
    assert_eq!(config_bytes, pushed.config_bytes);
    let config: Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(config["os"], image.platform.os.as_str());
    assert_eq!(config["architecture"], image.platform.architecture.as_str());
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), image.layers.len());
    assert_eq!(diff_ids.len(), image.layers.len());
    assert_eq!(
        config["history"].as_array().unwrap().len(),
        image.layers.len()
    );

    let mut tars = Vec::new();
    for (i, desc) in layers.iter().enumerate() {
        let digest = desc["digest"].as_str().unwrap();
        assert_eq!(digest, pushed.layer_digests[i]);
        assert_eq!(client.head_blob(repo, digest).await, StatusCode::OK);
        let blob = client.get_blob(repo, digest).await; // checks sha256
        assert_eq!(blob.len() as u64, desc["size"].as_u64().unwrap());
        let tar = decompress_layer(desc["mediaType"].as_str().unwrap(), &blob);
        assert_eq!(
            sha256_digest(&tar),
            diff_ids[i].as_str().unwrap(),
            "diff_id of layer {i}"
        );
        assert_eq!(tar, image.layers[i].tar);
        tars.push(tar);
    }
    let refs: Vec<&[u8]> = tars.iter().map(Vec::as_slice).collect();
    assert_eq!(flatten_layers(&refs), image.flattened());
}

fn file_text(fs: &std::collections::BTreeMap<String, FlatEntry>, path: &str) -> String {
    match fs.get(path) {
        Some(FlatEntry::File { data, .. }) => String::from_utf8(data.clone()).unwrap(),
        other => panic!("{path}: expected a file, got {other:?}"),
    }
}

fn all_fixture_images(kind: MediaKind) -> Vec<(&'static str, Image)> {
    vec![
        ("debian", fixture_image_debian(kind)),
        (
            "alpine",
            fixture_image_alpine(kind, Platform::linux_amd64()),
        ),
        ("rpm", fixture_image_rpm(kind)),
        ("whiteout", fixture_image_whiteout(kind)),
    ]
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Oci => "oci",
        MediaKind::DockerV2 => "docker",
    }
}

#[test]
fn fixture_images_have_expected_contents() {
    let deb = fixture_image_debian(MediaKind::Oci).flattened();
    assert!(file_text(&deb, "etc/os-release").contains("VERSION_ID=\"10\""));
    assert_eq!(
        dpkg_stanzas(&file_text(&deb, "var/lib/dpkg/status")).len(),
        3
    );

    let amd = fixture_image_alpine(MediaKind::Oci, Platform::linux_amd64()).flattened();
    let arm = fixture_image_alpine(MediaKind::Oci, Platform::linux_arm64()).flattened();
    assert!(file_text(&amd, "etc/os-release").contains("ID=alpine"));
    let (amd_db, arm_db) = (
        file_text(&amd, "lib/apk/db/installed"),
        file_text(&arm, "lib/apk/db/installed"),
    );
    assert_eq!(
        amd_db.matches("\nP:").count() + usize::from(amd_db.starts_with("P:")),
        15
    );
    assert!(amd_db.contains("A:x86_64") && !amd_db.contains("A:aarch64"));
    assert!(arm_db.contains("A:aarch64") && !arm_db.contains("A:x86_64"));
    assert!(arm_db.contains("so:libc.musl-aarch64.so.1") && !arm_db.contains("musl-x86_64"));
    assert_eq!(amd_db.lines().count(), arm_db.lines().count());
    assert!(amd_db.ends_with('\n') && arm_db.ends_with('\n'));

    let rpm = fixture_image_rpm(MediaKind::Oci).flattened();
    assert!(file_text(&rpm, "etc/os-release").contains("ID=\"amzn\""));
    match rpm.get("var/lib/rpm/rpmdb.sqlite") {
        Some(FlatEntry::File { data, .. }) => assert!(data.starts_with(b"SQLite format 3\0")),
        other => panic!("rpmdb: {other:?}"),
    }

    // Whiteouts: leftover.sh, a.txt, b.txt and postgresql-client are gone.
    let img = fixture_image_whiteout(MediaKind::Oci);
    assert_eq!(img.layers.len(), 3);
    let fs = img.flattened();
    let files: Vec<&str> = fs
        .iter()
        .filter(|(_, e)| !matches!(e, FlatEntry::Dir))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "etc/os-release",
            "opt/app/c.txt",
            "usr/lib/os-release",
            "var/lib/dpkg/status"
        ]
    );
    assert_eq!(
        fs["etc/os-release"],
        FlatEntry::Symlink("../usr/lib/os-release".into())
    );
    let status = file_text(&fs, "var/lib/dpkg/status");
    assert_eq!(dpkg_stanzas(&status).len(), 2);
    assert!(!status.contains(&format!("Package: {WHITEOUT_PURGED_PACKAGE}\n")));
    // The whiteout markers really are in the tars.
    let names = |l: &Layer| {
        tar::Archive::new(l.tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    assert!(names(&img.layers[1]).contains(&"usr/local/bin/.wh.leftover.sh".to_string()));
    assert!(names(&img.layers[2]).contains(&"opt/app/.wh..wh..opq".to_string()));

    // Reproducible digests.
    assert_eq!(
        img.manifest_digest(),
        fixture_image_whiteout(MediaKind::Oci).manifest_digest()
    );
}

#[tokio::test]
async fn no_auth_push_and_pull_every_fixture_both_media_types() {
    let reg = TestRegistry::start(RegistryAuth::None);
    eprintln!(
        "[timing] registry start (no auth): {:?}",
        reg.startup_time()
    );

    let v2 = reqwest::get(format!("{}/v2/", reg.url())).await.unwrap();
    assert_eq!(v2.status(), StatusCode::OK);
    assert_eq!(
        v2.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    let client = reg.client();
    let t_build = Instant::now();
    let images: Vec<_> = [MediaKind::Oci, MediaKind::DockerV2]
        .into_iter()
        .flat_map(|k| {
            all_fixture_images(k)
                .into_iter()
                .map(move |(n, i)| (format!("test/{n}-{}", kind_name(k)), i))
        })
        .collect();
    let build = t_build.elapsed();
    let t_push = Instant::now();
    let mut pushed = Vec::new();
    for (repo, image) in &images {
        pushed.push(client.push_image(repo, Some("v1"), image).await);
    }
    let push = t_push.elapsed();
    eprintln!("[timing] build 8 fixture images: {build:?}; push them: {push:?}");
    for ((_, image), p) in images.iter().zip(&pushed) {
        verify_pull(&client, p, image).await;
    }

    // Push by digest only (no tag), and re-push (blobs skipped by HEAD, same digest).
    let img = fixture_image_debian(MediaKind::Oci);
    let by_digest = client.push_image("test/untagged", None, &img).await;
    assert_eq!(by_digest.tag, None);
    verify_pull(&client, &by_digest, &img).await;
    let again = client.push_image("test/untagged", None, &img).await;
    assert_eq!(again.manifest_digest, by_digest.manifest_digest);
    let tags: Value = reqwest::get(format!("{}/v2/test/untagged/tags/list", reg.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tags["tags"].is_null() || tags["tags"].as_array().unwrap().is_empty(),
        "{tags}"
    );

    // Without an OCI Accept header Distribution 2.8 answers 404 for an OCI manifest.
    let plain = reqwest::get(format!("{}/v2/test/debian-oci/manifests/v1", reg.url()))
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::NOT_FOUND);
    // Unknown tag / blob.
    assert_eq!(
        client.get_manifest("test/debian-oci", "nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client
            .head_blob("test/debian-oci", &sha256_digest(b"nope"))
            .await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_compression_in_both_media_types() {
    let reg = TestRegistry::start(RegistryAuth::None);
    let client = reg.client();
    for kind in [MediaKind::Oci, MediaKind::DockerV2] {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let img = fixture_image_whiteout(kind).with_compression(c);
            let repo = format!("test/compress-{}-{c:?}", kind_name(kind)).to_lowercase();
            let p = client.push_image(&repo, Some("v1"), &img).await;
            let m: Value = serde_json::from_slice(&p.manifest_bytes).unwrap();
            for l in m["layers"].as_array().unwrap() {
                assert_eq!(l["mediaType"], img.layers[0].media_type(kind));
            }
            verify_pull(&client, &p, &img).await;
        }
    }
}

#[tokio::test]
async fn basic_auth_challenge_and_push_pull() {
    let reg = TestRegistry::start(RegistryAuth::basic_default());
    eprintln!("[timing] registry start (basic): {:?}", reg.startup_time());

    // No credentials: 401 + Basic challenge.
    let resp = reqwest::get(format!("{}/v2/", reg.url())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (scheme, params) =
        parse_www_authenticate(resp.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(scheme, "Basic");
    assert_eq!(params["realm"], BASIC_REALM);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    let t = Instant::now();
    let client = reg.client();
    let images = [
        (
            "test/alpine",
            fixture_image_alpine(MediaKind::Oci, Platform::linux_amd64()),
        ),
        ("test/whiteout", fixture_image_whiteout(MediaKind::DockerV2)),
        ("test/rpm", fixture_image_rpm(MediaKind::Oci)),
    ];
    let mut pushed = Vec::new();
    for (repo, img) in &images {
        pushed.push(client.push_image(repo, Some("latest"), img).await);
    }
    eprintln!(
        "[timing] build+push 3 images (basic auth): {:?}",
        t.elapsed()
    );
    for ((_, img), p) in images.iter().zip(&pushed) {
        verify_pull(&client, p, img).await;
    }

    // HEAD/GET without or with wrong credentials: 401; with them: 200.
    let anon = reg.anonymous_client();
    let wrong = RegistryClient::new(&reg.url(), Some((TEST_USER, "wrong-password")));
    let p = &pushed[0];
    for c in [&anon, &wrong] {
        assert_eq!(
            c.head_manifest("test/alpine", "latest").await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            c.get_manifest("test/alpine", &p.manifest_digest)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            c.head_blob("test/alpine", &p.layer_digests[0]).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        client.head_blob("test/alpine", &p.layer_digests[0]).await,
        StatusCode::OK
    );
    // Raw reqwest with basic auth.
    let raw = reqwest::Client::new()
        .head(format!("{}/v2/test/alpine/manifests/latest", reg.url()))
        .basic_auth(TEST_USER, Some(TEST_PASSWORD))
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(
        raw.headers()["docker-content-digest"],
        p.manifest_digest.as_str()
    );
}

#[tokio::test]
async fn basic_auth_custom_credentials_use_htpasswd() {
    let auth = RegistryAuth::Basic {
        user: "alice".into(),
        password: "s3cret with spaces".into(),
    };
    let reg = TestRegistry::start(auth);
    let img = fixture_image_debian(MediaKind::DockerV2);
    let p = push_image(&reg, "team/debian", Some("10"), &img).await;
    verify_pull(&reg.client(), &p, &img).await;
    let default_creds = RegistryClient::new(&reg.url(), Some((TEST_USER, TEST_PASSWORD)));
    assert_eq!(
        default_creds
            .head_manifest("team/debian", "10")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn token_auth_challenge_flow_and_push_pull() {
    let reg = TestRegistry::start(RegistryAuth::token_default());
    eprintln!(
        "[timing] registry start (token, incl. token server): {:?}",
        reg.startup_time()
    );
    let realm = reg.token_server().unwrap().realm();

    // No credentials: 401 + Bearer challenge pointing at the token server.
    let resp = reqwest::get(format!("{}/v2/", reg.url())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (scheme, params) =
        parse_www_authenticate(resp.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(scheme, "Bearer");
    assert_eq!(params["realm"], realm);
    assert_eq!(params["service"], TOKEN_SERVICE);

    let t = Instant::now();
    let client = reg.client();
    let images = [
        ("test/debian", fixture_image_debian(MediaKind::Oci)),
        ("test/rpm", fixture_image_rpm(MediaKind::DockerV2)),
        ("test/whiteout", fixture_image_whiteout(MediaKind::Oci)),
    ];
    let mut pushed = Vec::new();
    for (repo, img) in &images {
        pushed.push(client.push_image(repo, Some("v1"), img).await);
    }
    eprintln!(
        "[timing] build+push 3 images (token auth): {:?}",
        t.elapsed()
    );
    for ((_, img), p) in images.iter().zip(&pushed) {
        verify_pull(&client, p, img).await;
    }

    // The push asked for repository:<repo>:pull,push and got both actions.
    let issued = reg.token_server().unwrap().issued();
    let push_tok = issued
        .iter()
        .find(|t| t.scopes == [push_scope("test/debian")])
        .expect("push token");
    assert_eq!(push_tok.subject, TEST_USER);
    assert_eq!(
        push_tok.access[0]["actions"],
        serde_json::json!(["pull", "push"])
    );

    // The manifest challenge names the scope.
    let resp = reqwest::Client::new()
        .head(format!("{}/v2/test/debian/manifests/v1", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, params) = parse_www_authenticate(resp.headers()["www-authenticate"].to_str().unwrap());
    assert_eq!(params["scope"], pull_scope("test/debian"));

    // Anonymous: the token server hands out a token without access → still 401.
    let anon = reg.anonymous_client();
    let anon_token = anon
        .fetch_token(&realm, TOKEN_SERVICE, &pull_scope("test/debian"))
        .await
        .unwrap();
    let with_anon = reqwest::Client::new()
        .get(format!("{}/v2/test/debian/manifests/v1", reg.url()))
        .bearer_auth(&anon_token)
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .send()
        .await
        .unwrap();
    assert_eq!(with_anon.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anon.get_manifest("test/debian", "v1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        anon.head_blob("test/debian", &pushed[0].layer_digests[0])
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        reg.token_server()
            .unwrap()
            .issued()
            .iter()
            .any(|t| t.subject.is_empty() && t.access == serde_json::json!([]))
    );

    // Wrong password: the token server says 401, so the registry request stays 401.
    let wrong = RegistryClient::new(&reg.url(), Some((TEST_USER, "nope")));
    assert!(
        wrong
            .fetch_token(&realm, TOKEN_SERVICE, &pull_scope("test/debian"))
            .await
            .is_none()
    );
    assert_eq!(
        wrong.head_manifest("test/debian", "v1").await.status,
        StatusCode::UNAUTHORIZED
    );

    // A manual token works with a plain Bearer header; the JWT carries x5c + RS256.
    let tok = client
        .fetch_token(&realm, TOKEN_SERVICE, &pull_scope("test/debian"))
        .await
        .unwrap();
    use base64::Engine as _;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tok.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);
    let ok = reqwest::Client::new()
        .get(format!(
            "{}/v2/test/debian/blobs/{}",
            reg.url(),
            pushed[0].config_digest
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // pull-only token cannot push
    let post = reqwest::Client::new()
        .post(format!("{}/v2/test/debian/blobs/uploads/", reg.url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn multiarch_index_and_manifest_list_in_every_auth_mode() {
    for auth in [
        RegistryAuth::None,
        RegistryAuth::basic_default(),
        RegistryAuth::token_default(),
    ] {
        let reg = TestRegistry::start(auth.clone());
        let client = reg.client();
        for kind in [IndexKind::OciIndex, IndexKind::DockerManifestList] {
            let t = Instant::now();
            let (index, children) =
                push_fixture_multiarch(&reg, "test/multiarch", &format!("{kind:?}"), kind).await;
            eprintln!(
                "[timing] build+push 2-platform {kind:?} ({auth:?}): {:?}",
                t.elapsed()
            );
            let got = client.get_manifest("test/multiarch", &index.tag).await;
            assert_eq!(got.status, StatusCode::OK);
            assert_eq!(got.content_type, kind.media_type());
            assert_eq!(got.digest, index.digest);
            assert_eq!(got.bytes, index.bytes);
            let idx: Value = serde_json::from_slice(&got.bytes).unwrap();
            let entries = idx["manifests"].as_array().unwrap();
            assert_eq!(entries.len(), 2);
            let mut dbs = Vec::new();
            for (entry, child) in entries.iter().zip(&children) {
                let digest = entry["digest"].as_str().unwrap();
                assert_eq!(digest, child.manifest_digest);
                let m = client.get_manifest("test/multiarch", digest).await;
                assert_eq!(m.status, StatusCode::OK, "child {digest} resolves");
                assert_eq!(m.content_type, entry["mediaType"].as_str().unwrap());
                assert_eq!(m.bytes.len() as u64, entry["size"].as_u64().unwrap());
                let manifest: Value = serde_json::from_slice(&m.bytes).unwrap();
                let config: Value = serde_json::from_slice(
                    &client
                        .get_blob(
                            "test/multiarch",
                            manifest["config"]["digest"].as_str().unwrap(),
                        )
                        .await,
                )
                .unwrap();
                assert_eq!(config["architecture"], entry["platform"]["architecture"]);
                assert_eq!(config["os"], "linux");
                let layer = &manifest["layers"][0];
                let blob = client
                    .get_blob("test/multiarch", layer["digest"].as_str().unwrap())
                    .await;
                let fs = flatten_layers(&[&decompress_layer(
                    layer["mediaType"].as_str().unwrap(),
                    &blob,
                )]);
                dbs.push(file_text(&fs, "lib/apk/db/installed"));
            }
            assert_eq!(entries[1]["platform"]["variant"], "v8");
            assert!(dbs[0].contains("A:x86_64") && dbs[1].contains("A:aarch64"));
        }
    }
}

#[tokio::test]
async fn notifications_arrive_for_manifest_push() {
    let receiver = NotificationReceiver::start();
    let reg = TestRegistry::start_with_notifications(
        RegistryAuth::basic_default(),
        &receiver.url(),
        Some("Bearer test-webhook-token"),
    );
    eprintln!(
        "[timing] registry start (basic + notifications): {:?}",
        reg.startup_time()
    );
    let img = fixture_image_alpine(MediaKind::Oci, Platform::linux_amd64());
    let t = Instant::now();
    let pushed = push_image(&reg, "test/notify", Some("3.18"), &img).await;

    let (ev, env) = receiver
        .wait_for_event(Duration::from_secs(10), |e| {
            e["action"] == "push" && e["target"]["digest"] == pushed.manifest_digest.as_str()
        })
        .await;
    eprintln!(
        "[timing] push → manifest push notification received: {:?}",
        t.elapsed()
    );
    assert_eq!(
        env.header("authorization"),
        Some("Bearer test-webhook-token")
    );
    assert_eq!(
        env.header("content-type"),
        Some("application/vnd.docker.distribution.events.v1+json")
    );
    let target = &ev["target"];
    assert_eq!(target["mediaType"], MT_OCI_MANIFEST);
    assert_eq!(target["repository"], "test/notify");
    assert_eq!(target["tag"], "3.18");
    assert_eq!(
        target["size"].as_u64().unwrap(),
        pushed.manifest_bytes.len() as u64
    );
    let refs: Vec<&str> = target["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    let mut want = vec![pushed.config_digest.as_str()];
    want.extend(pushed.layer_digests.iter().map(String::as_str));
    assert_eq!(refs, want);
    assert_eq!(ev["actor"]["name"], TEST_USER);
    assert_eq!(ev["request"]["method"], "PUT");

    // Blob pushes show up as application/octet-stream events; an index push lists its children.
    receiver
        .wait_for_event(Duration::from_secs(10), |e| {
            e["action"] == "push" && e["target"]["digest"] == pushed.layer_digests[0].as_str()
        })
        .await;
    let (index, _) =
        push_fixture_multiarch(&reg, "test/notify-multi", "latest", IndexKind::OciIndex).await;
    let (ev, _) = receiver
        .wait_for_event(Duration::from_secs(10), |e| {
            e["target"]["digest"] == index.digest.as_str()
        })
        .await;
    assert_eq!(ev["target"]["mediaType"], MT_OCI_INDEX);
    assert_eq!(ev["target"]["references"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn notifications_are_retried_after_receiver_errors() {
    let receiver = NotificationReceiver::start_failing_first(2);
    let mut ep = NotificationEndpoint::new(receiver.url());
    ep.backoff = Duration::from_millis(100);
    ep.ignored_media_types = vec!["application/octet-stream".into()]; // no blob events
    let reg = TestRegistry::start_with(RegistryAuth::None, Some(ep));
    let pushed = push_image(
        &reg,
        "test/retry",
        Some("v1"),
        &fixture_image_debian(MediaKind::DockerV2),
    )
    .await;
    let (ev, _) = receiver
        .wait_for_event(Duration::from_secs(10), |e| {
            e["target"]["digest"] == pushed.manifest_digest.as_str()
        })
        .await;
    assert_eq!(ev["target"]["mediaType"], MT_DOCKER_MANIFEST);
    assert!(
        receiver
            .events()
            .iter()
            .all(|e| e["target"]["mediaType"] != "application/octet-stream")
    );
}

#[test]
fn registry_process_is_killed_on_drop() {
    let reg = TestRegistry::start(RegistryAuth::None);
    let pid = reg.pid();
    let port = reg.port();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(reg);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "registry pid {pid} still exists"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
