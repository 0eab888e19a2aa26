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
