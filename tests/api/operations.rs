use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;

backend_tests!(probes_metrics_and_docs_answer);

async fn probes_metrics_and_docs_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    for probe in ["/healthz", "/readyz"] {
        let (status, body) = json_of(app.client.get(app.url(probe)).send().await.unwrap()).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("ok")),
            "{probe}"
        );
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("crowsnest_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("endpoint=\"/readyz\""), "{metrics}");

    let (status, doc) = json_of(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let served: serde_json::Value = doc;
    let generated: serde_json::Value =
        serde_json::from_str(&crowsnest::api::openapi_json()).unwrap();
    assert_eq!(served, generated);

    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI is served"
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = redirect.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 308);
}
