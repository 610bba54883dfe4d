use crowsnest::domain::Role;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;

backend_tests!(
    connect_read_update_delete_never_shows_credentials,
    lists_page_through_registries,
    login_servers_and_names_are_validated,
);

fn registry_path(rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/sub-1/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}?{OWN_API}"
    )
}

async fn connect_read_update_delete_never_shows_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Contributor);
    let password = format!("pw-{}", uuid::Uuid::new_v4());
    let path = registry_path("rg", "Reg1");
    let mut bodies: Vec<Value> = Vec::new();

    let (status, created) = app
        .put_json(
            &path,
            &token,
            &json!({"properties": {"loginServer": "Registry.Example.com:5000", "insecure": true,
            "credentials": {"username": "puller", "password": password}}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["id"],
        "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg1"
    );
    assert_eq!(created["name"], "reg1");
    assert_eq!(created["type"], "Microsoft.ContainerRegistry/registries");
    assert_eq!(
        created["properties"]["loginServer"],
        "registry.example.com:5000"
    );
    assert_eq!(created["properties"]["insecure"], true);
    assert_eq!(created["properties"]["credentialsType"], "Basic");
    let webhook = created["properties"]["webhook"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        webhook,
        format!(
            "{}/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg1/providers/Microsoft.Security/registryEvents?api-version=2026-11-01",
            app.address
        )
    );
    let secret = created["properties"]["webhook"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 40, "a strong secret: {secret}");
    bodies.push(created);

    // The secret is stored hashed, and the credentials are kept for pulling.
    let stored = app
        .db(|c| {
            let id = crowsnest::domain::Scope::parse("subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg1").unwrap();
            let crowsnest::domain::Scope::Registry(id) = id else { unreachable!() };
            crowsnest::store::registries::find(c, &id)
        })
        .await
        .unwrap();
    assert_ne!(stored.webhook_secret_sha256, secret);
    assert!(!stored.webhook_secret_sha256.contains(&secret));
    assert!(stored.credentials.as_deref().unwrap().contains(&password));

    let reader = app.token("sub-1", Role::Reader);
    let (status, read) = app.get_json(&path, &reader).await;
    assert_eq!(status, 200);
    assert!(
        read["properties"]["webhook"].get("secret").is_none(),
        "the secret is shown once: {read}"
    );
    assert_eq!(read["properties"]["webhook"]["url"], webhook);
    bodies.push(read);

    // An update without credentials keeps them; the secret is not shown again.
    let (status, updated) = app
        .put_json(
            &path,
            &token,
            &json!({"properties": {"loginServer": "registry.example.com:5000"}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["properties"]["insecure"], false);
    assert_eq!(updated["properties"]["credentialsType"], "Basic");
    assert!(updated["properties"]["webhook"].get("secret").is_none());
    bodies.push(updated);

    let (status, listed) = app
        .get_json(
            &format!(
                "/subscriptions/sub-1/providers/Microsoft.ContainerRegistry/registries?{OWN_API}"
            ),
            &reader,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    bodies.push(listed);

    let (status, token_creds) = app
        .put_json(
            &path,
            &token,
            &json!({"properties": {"loginServer": "registry.example.com:5000",
        "credentials": {"token": password}}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(token_creds["properties"]["credentialsType"], "Token");
    bodies.push(token_creds);
    let (status, cleared) = app.put_json(&path, &token, &json!({"properties": {"loginServer": "registry.example.com:5000", "credentials": null}})).await;
    assert_eq!(status, 200);
    assert_eq!(cleared["properties"]["credentialsType"], "None");
    bodies.push(cleared);

    for body in &bodies {
        let text = body.to_string();
        assert!(
            !text.contains(&password),
            "a response shows the password: {text}"
        );
        assert!(
            !text.contains("puller"),
            "a response shows the username: {text}"
        );
    }
    let logs = captured_logs();
    assert!(
        logs.contains("registry connected") && logs.contains("/registries/reg1"),
        "the log capture works"
    );
    assert!(!logs.contains(&password), "a log line shows the password");

    let response = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = app.get_json(&path, &reader).await;
    assert_cloud_error(status, &body, 404, "ResourceNotFound");
    let response = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

async fn lists_page_through_registries(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Contributor);
    for (rg, name) in [
        ("rg-b", "one"),
        ("rg-a", "two"),
        ("rg-a", "three"),
        ("rg-c", "four"),
    ] {
        let (status, _) = app
            .put_json(
                &registry_path(rg, name),
                &token,
                &json!({"properties": {"loginServer": format!("{name}.example.com")}}),
            )
            .await;
        assert_eq!(status, 201);
    }
    app.seed_registry("sub-2", "rg-a", "elsewhere").await;
    let mut names = Vec::new();
    let mut next = Some(app.url(&format!(
        "/subscriptions/sub-1/providers/Microsoft.ContainerRegistry/registries?{OWN_API}&$top=3"
    )));
    while let Some(url) = next {
        let (status, body) = json_of(
            app.client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        names.extend(body["value"].as_array().unwrap().iter().map(|r| {
            r["id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        }));
        next = body.get("nextLink").map(|l| l.as_str().unwrap().to_owned());
    }
    assert_eq!(
        names,
        vec!["three", "two", "one", "four"],
        "resource group, then name order"
    );
    let (_, body) = app.get_json(&format!("/subscriptions/sub-1/resourceGroups/rg-a/providers/Microsoft.ContainerRegistry/registries?{OWN_API}"), &token).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
}

async fn login_servers_and_names_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Contributor);
    let put = |server: &str| json!({"properties": {"loginServer": server}});
    for bad in [
        "https://registry.example.com",
        "registry.example.com/path",
        "",
        "host:99999",
        "a b",
    ] {
        let (status, body) = app
            .put_json(&registry_path("rg", "reg"), &token, &put(bad))
            .await;
        assert_cloud_error(status, &body, 400, "InvalidParameter");
        assert_eq!(body["error"]["target"], "properties.loginServer");
    }
    for (rg, name) in [
        ("rg", "bad_name"),
        ("rg", "-x"),
        ("rg.", "reg"),
        ("r%20g", "reg"),
    ] {
        let (status, body) = app
            .put_json(
                &registry_path(rg, name),
                &token,
                &put("registry.example.com"),
            )
            .await;
        assert_cloud_error(status, &body, 400, "InvalidResourceName");
    }
    let (status, body) = app
        .put_json(&registry_path("rg", "reg"), &token, &json!({"properties": {"loginServer": "r.example.com", "credentials": {"username": "", "password": "x"}}}))
        .await;
    assert_cloud_error(status, &body, 400, "InvalidParameter");
    let (status, body) = app
        .put_json(
            &registry_path("rg", "reg"),
            &token,
            &json!({"properties": {"loginServer": "r.example.com", "credentials": {"user": "x"}}}),
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");

    let (status, _) = app
        .put_json(
            &registry_path("rg", "first"),
            &token,
            &put("shared.example.com"),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .put_json(
            &registry_path("rg", "second"),
            &token,
            &put("SHARED.example.com"),
        )
        .await;
    assert_cloud_error(status, &body, 409, "LoginServerAlreadyConnected");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/registries/first")
    );
}
