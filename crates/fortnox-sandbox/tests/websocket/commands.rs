//! The five commands, their responses, replay and the scope gate.

use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn the_command_flow_and_the_shape_of_an_event() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    sb.create_tenant("t1", None);
    let id = sb.tenant_id("t1").expect("t1 has an id");
    assert_eq!(sb.company("t1").database_number, Some(id));
    assert_eq!(sb.tenant_id("nobody"), None);

    let tok = token(&sb, "t1");
    let sent = format!("Bearer {tok}");
    let mut c = connect(&sb).await;
    let r = c.add_tenants(&[&sent]).await;
    assert_eq!(
        r,
        json!({"response": "add-tenants-v1", "result": "ok", "tenantIds": {&sent: id}})
    );
    let r = c.add_topics(json!([{"topic": "orders"}])).await;
    assert_eq!(r, json!({"response": "add-topics-v1", "result": "ok"}));
    let r = c
        .command(json!({"command": "add-topics-v1", "topics": [{"topic": "articles"}]}))
        .await;
    assert_eq!(r["result"], "ok");
    // Nothing flows before subscribe-v1.
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;
    let r = c.subscribe().await;
    assert_eq!(r, json!({"response": "subscribe-v1", "result": "ok"}));

    sb.create_order("t1", json!({})).expect("order");
    let e = c.event().await;
    let keys: Vec<&str> = e
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{e}");
    assert_eq!(e["topic"], "orders");
    assert_eq!(e["type"], "order-created-v1");
    assert_eq!(e["tenantId"], json!(id));
    assert_eq!(e["entityId"], "2");
    let offset = e["offset"].as_str().expect("offset is a string");
    assert_eq!(offset.len(), 8);
    assert!(
        offset.chars().all(|ch| ch.is_ascii_alphanumeric()),
        "{offset}"
    );
    let ts = e["timestamp"].as_str().expect("timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert!(ts.ends_with("+01:00") && ts.contains('.'), "{ts}");
    // The log holds both, the first from before the subscription too.
    let log = sb.ws_events("orders");
    assert_eq!(log.len(), 2);
    assert_eq!(log[1], e);
    assert!(log[0]["offset"].as_str() < log[1]["offset"].as_str());

    let r = c.command(json!({"command": "list-tenants-v1"})).await;
    assert_eq!(
        r,
        json!({"response": "list-tenants-v1", "result": "ok", "tenantIds": [id]})
    );
    // A second subscribe is fine and changes nothing.
    assert_eq!(c.subscribe().await["result"], "ok");
    let r = c
        .command(json!({"command": "remove-tenants-v1", "tenants": [id, 42]}))
        .await;
    assert_eq!(r, json!({"response": "remove-tenants-v1", "result": "ok"}));
    let r = c.command(json!({"command": "list-tenants-v1"})).await;
    assert_eq!(r["tenantIds"], json!([]));
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;
    let counters = sb.ws_counters();
    assert_eq!(counters.command("add-tenants-v1"), 1);
    assert_eq!(counters.command("add-topics-v1"), 2);
    assert_eq!(counters.command("subscribe-v1"), 2);
    assert_eq!(counters.command("list-tenants-v1"), 2);
    assert_eq!(counters.connections_open, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn each_token_is_checked_on_its_own() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let good = token(&sb, "t1");
    let plain = token(&sb, "t2");
    let expired = token(&sb, "t3");
    sb.expire_access_tokens(Some("t3"));
    let revoked = token(&sb, "t4");
    sb.revoke_tokens("t4");
    let good_sent = format!("Bearer {good}");
    let tokens = [
        good_sent.as_str(),
        "Bearer not-a-sandbox-token",
        plain.as_str(),
        expired.as_str(),
        revoked.as_str(),
    ];
    let mut c = connect(&sb).await;
    let r = c.add_tenants(&tokens).await;
    assert_eq!(r["result"], "error", "{r}");
    assert_eq!(
        r["invalidTokens"],
        json!(["Bearer not-a-sandbox-token", expired, revoked])
    );
    assert_eq!(
        r["tenantIds"],
        json!({ &good_sent: sb.tenant_id("t1"), &plain: sb.tenant_id("t2") })
    );
    // The valid ones were added.
    let r = c.command(json!({"command": "list-tenants-v1"})).await;
    let mut want = vec![sb.tenant_id("t1"), sb.tenant_id("t2")];
    want.sort();
    assert_eq!(r["tenantIds"], json!(want));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_wrong_client_secret_rejects_every_token() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let a = token(&sb, "t1");
    let b = format!("Bearer {}", token(&sb, "t2"));
    let mut c = connect(&sb).await;
    for secret in [json!("wrong"), Value::Null] {
        let r = c
            .command(json!({"command": "add-tenants-v1", "clientSecret": secret, "accessTokens": [a, b]}))
            .await;
        assert_eq!(
            r,
            json!({"response": "add-tenants-v1", "result": "error", "invalidTokens": [a, b], "tenantIds": {}})
        );
    }
    let r = c.command(json!({"command": "list-tenants-v1"})).await;
    assert_eq!(r["tenantIds"], json!([]));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn adding_a_tenant_again_keeps_its_id_and_sends_each_event_once() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let first = token(&sb, "t1");
    let mut c = subscribed(&sb, &[], &["orders"]).await;
    assert_eq!(c.add_tenants(&[&first]).await["result"], "ok");
    let fresh = token(&sb, "t1");
    let r = c.add_tenants(&[&fresh, &first]).await;
    let id = sb.tenant_id("t1");
    assert_eq!(r["tenantIds"], json!({ &fresh: id, &first: id }));
    sb.create_order("t1", json!({})).expect("order");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "1")
    );
    c.quiet().await;
    assert_eq!(sb.ws_connections()[0].tenant_ids, vec![id.expect("id")]);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn commands_work_in_any_order() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = connect(&sb).await;
    // Subscribing with no tenants and no topics is fine and delivers nothing.
    assert_eq!(c.subscribe().await["result"], "ok");
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;
    assert_eq!(
        c.add_topics(json!([{"topic": "orders"}])).await["result"],
        "ok"
    );
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;
    let tok = token(&sb, "t1");
    assert_eq!(c.add_tenants(&[&tok]).await["result"], "ok");
    sb.create_order("t1", json!({})).expect("order");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "3")
    );
    // A topic added after subscribing flows at once.
    assert_eq!(
        c.add_topics(json!([{"topic": "articles"}])).await["result"],
        "ok"
    );
    sb.add_articles("t1", vec![fortnox_sandbox::testkit::article("A1", true, 5)]);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "A1")
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_topics_and_offsets_the_sandbox_did_not_issue_are_invalid() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    sb.create_order("t1", json!({})).expect("order");
    let issued = sb.ws_events("orders")[0]["offset"].clone();
    let mut c = connect(&sb).await;
    let r = c
        .add_topics(json!([
            {"topic": "order"},
            {"topic": "orders", "offset": "xDy7J"},
            {"topic": "invoices", "offset": "zzzzzzzz"},
            {"topic": "customers", "offset": 7},
            {"nope": true},
            "articles",
            {"topic": "articles"},
            {"topic": "vouchers", "offset": null},
        ]))
        .await;
    assert_eq!(r["result"], "error");
    assert_eq!(
        r["invalidTopics"],
        json!([
            "order",
            "orders",
            "invoices",
            "customers",
            "{\"nope\":true}",
            "\"articles\""
        ])
    );
    assert_eq!(sb.ws_connections()[0].topics, vec!["articles", "vouchers"]);
    // An offset it did issue is fine.
    let r = c
        .add_topics(json!([{"topic": "orders", "offset": issued}]))
        .await;
    assert_eq!(r, json!({"response": "add-topics-v1", "result": "ok"}));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn replay_starts_at_the_offset_inclusive_and_without_one_at_the_latest() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    for _ in 0..3 {
        sb.create_order("t1", json!({})).expect("order");
    }
    sb.create_order("other", json!({})).expect("order");
    sb.add_articles("t1", vec![fortnox_sandbox::testkit::article("A1", true, 5)]);
    let log = sb.ws_events("orders");
    let from = log[1]["offset"].clone();
    let tok = token(&sb, "t1");

    // From the second event: the second, the third (the other tenant's is
    // not ours), then live ones; articles without an offset only live.
    let mut c = connect(&sb).await;
    assert_eq!(
        c.add_topics(json!([{"topic": "orders", "offset": from}, {"topic": "articles"}]))
            .await["result"],
        "ok"
    );
    assert_eq!(c.add_tenants(&[&tok]).await["result"], "ok");
    assert_eq!(c.subscribe().await["result"], "ok");
    assert_eq!(c.event().await, log[1]);
    assert_eq!(c.event().await, log[2]);
    c.quiet().await;
    sb.mark_done("t1", "1").expect("done");
    let live = c.event().await;
    assert_eq!(what(&live), ev("orders", "order-updated-v1", "1"));
    assert!(live["offset"].as_str() > log[3]["offset"].as_str());

    // Without an offset: nothing old.
    let mut latest = subscribed(&sb, &["t1"], &["orders"]).await;
    latest.quiet().await;

    // An offset added after subscribing replays at once, after the response.
    let r = latest
        .add_topics(json!([{"topic": "orders", "offset": log[2]["offset"]}]))
        .await;
    assert_eq!(r["result"], "ok");
    assert_eq!(latest.event().await, log[2]);
    assert_eq!(
        what(&latest.event().await),
        ev("orders", "order-updated-v1", "1")
    );
    latest.quiet().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_tenant_gets_only_the_topics_its_token_has_the_scope_for() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let articles_only = sb.issue_tokens_with_scope("t1", "article").access_token;
    let mut c = connect(&sb).await;
    c.setup(&[&articles_only], &["orders", "articles", "invoices"])
        .await;
    sb.create_order("t1", json!({})).expect("order");
    sb.create_invoice("t1", "1").expect("invoice");
    sb.add_articles("t1", vec![fortnox_sandbox::testkit::article("A1", true, 5)]);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "A1")
    );
    c.quiet().await;
    // The events were emitted all the same.
    assert_eq!(sb.ws_events("orders").len(), 2);
    assert_eq!(sb.ws_events("invoices").len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = connect(&sb).await;
    c.send_text("not json").await;
    assert_eq!(c.recv().await, json!({"response": null, "result": "error"}));
    c.send_text("{\"command\":").await;
    assert_eq!(c.recv().await, json!({"response": null, "result": "error"}));
    c.send(json!({"no": "command"})).await;
    assert_eq!(c.recv().await, json!({"response": null, "result": "error"}));
    c.send(json!({"command": 5})).await;
    assert_eq!(c.recv().await, json!({"response": null, "result": "error"}));
    c.send(json!([1, 2])).await;
    assert_eq!(c.recv().await, json!({"response": null, "result": "error"}));
    let r = c.command(json!({"command": "start-v1"})).await;
    assert_eq!(r, json!({"response": "start-v1", "result": "error"}));
    for bad in [
        json!({"command": "add-tenants-v1", "clientSecret": "x"}),
        json!({"command": "add-tenants-v1", "accessTokens": [1]}),
        json!({"command": "add-topics-v1", "topics": "orders"}),
        json!({"command": "remove-tenants-v1"}),
    ] {
        let r = c.command(bad.clone()).await;
        assert_eq!(r, json!({"response": bad["command"], "result": "error"}));
    }
    // Still open and working.
    let tok = token(&sb, "t1");
    assert_eq!(c.add_tenants(&[&tok]).await["result"], "ok");
    assert_eq!(sb.ws_counters().command("<invalid>"), 6);
    sandbox.shutdown().await;
}
