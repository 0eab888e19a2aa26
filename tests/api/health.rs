use crate::common::TestApp;

#[tokio::test]
async fn health_and_readiness_answer_and_graphiql_is_served() {
    let app = TestApp::spawn().await;
    let healthz = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let readyz = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);
    let graphiql = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // OpenMetrics names the counter family without `_total`; its samples carry it.
    assert!(
        metrics.contains("# TYPE fortnox_calls counter"),
        "{metrics}"
    );
    for sample in [
        "invoice_duplicates_detected_total ",
        "invoice_duplicates_credited_total ",
        "invoices_for_changed_orders_total ",
    ] {
        assert!(metrics.contains(sample), "{sample}: {metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_answer_only_their_token_when_one_is_set() {
    let app = TestApp::spawn_with(|config| {
        config.auth.metrics_token = Some("scrape-secret".into());
    })
    .await;
    let get = |token: Option<&str>| {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let refused = get(None).await.expect("GET /metrics");
    assert_eq!(refused.status(), 401);
    let wrong = get(Some("scrape-secreT")).await.expect("GET /metrics");
    assert_eq!(wrong.status(), 401);
    // An API token is no metrics token.
    let api = get(Some(&crate::common::admin_token()))
        .await
        .expect("GET /metrics");
    assert_eq!(api.status(), 401);
    let allowed = get(Some("scrape-secret")).await.expect("GET /metrics");
    assert_eq!(allowed.status(), 200);
    let body = allowed.text().await.unwrap_or_default();
    assert!(body.contains("# TYPE fortnox_calls counter"), "{body}");
    app.stop().await;
}
