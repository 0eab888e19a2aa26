//! Connecting Fortnox (docs/rules.md rule 1): the consent is bound to the person who
//! started it, and the Fortnox company behind a connection is recorded, feeds one merchant
//! only, and never changes without a disconnect.
use fortnox_fulfilment::auth::Role;
use fortnox_sandbox::CompanySettings;
use serde_json::{json, Value};

use crate::common::{self, error_code, error_reason, token_for, TestApp};
use crate::flow::{approve_in_fortnox, complete_as, connect_as, Flow, TENANT};

const OTHER: &str = "other-company";

fn refusal(body: &Value) -> (Option<&str>, Option<&str>) {
    (error_code(body), error_reason(body))
}

async fn status(app: &TestApp, merchant: i64) -> Value {
    let body = app
        .graphql(
            &common::admin_token(),
            "query($m: ID!) { fortnoxIntegration(merchantId: $m) { status company { name organizationNumber tenantId } } }",
            json!({ "m": merchant.to_string() }),
        )
        .await;
    body["data"]["fortnoxIntegration"].clone()
}

async fn new_merchant(flow: &Flow, name: &str) -> i64 {
    common::create_merchant(flow.app.store(), name).await
}

#[tokio::test]
async fn a_consent_completed_by_someone_else_connects_nothing() {
    let flow = Flow::start().await;
    flow.sb()
        .create_tenant_with_company(
            OTHER,
            None,
            CompanySettings {
                company_name: Some("Victim AB".into()),
                ..CompanySettings::default()
            },
        )
        .expect("tenant");
    let d = new_merchant(&flow, "D AB").await;
    let x = new_merchant(&flow, "X AB").await;
    let d_user = token_for("dana", Role::Merchant, vec![d]);
    let x_user = token_for("xavier", Role::Merchant, vec![x, d]);

    // D starts, and sends the link to a person at another company, who approves it there.
    flow.sb().set_authorize_tenant(OTHER);
    let (code, state) = approve_in_fortnox(&flow.app, &d_user, d).await;
    // The callback alone connects nothing: it hands code and state on.
    let page = reqwest::get(flow.app.url(&format!(
        "/oauth/fortnox/callback?code={code}&state={state}"
    )))
    .await
    .expect("callback")
    .text()
    .await
    .expect("page");
    assert!(page.contains("completeFortnoxConnection"), "{page}");
    assert_eq!(status(&flow.app, d).await["status"], "NOT_CONNECTED");
    // That person, signed in here too, completes it: refused, nothing connected.
    let body = complete_as(&flow.app, &x_user, d, &code, &state).await;
    assert_eq!(
        refusal(&body),
        (Some("FORBIDDEN"), Some("OAUTH_STARTED_BY_ANOTHER")),
        "{body}"
    );
    assert_eq!(status(&flow.app, d).await["status"], "NOT_CONNECTED");
    // The link is spent: D cannot use it afterwards either.
    let body = complete_as(&flow.app, &d_user, d, &code, &state).await;
    assert_eq!(
        refusal(&body),
        (Some("INVALID_INPUT"), Some("OAUTH_STATE_INVALID")),
        "{body}"
    );
    // Nor can the starter complete it for another merchant.
    let (code, state) = approve_in_fortnox(&flow.app, &x_user, x).await;
    let body = complete_as(&flow.app, &x_user, d, &code, &state).await;
    assert_eq!(refusal(&body).1, Some("OAUTH_STARTED_BY_ANOTHER"), "{body}");
    assert_eq!(status(&flow.app, d).await["status"], "NOT_CONNECTED");
    flow.stop().await;
}

#[tokio::test]
async fn the_connected_company_is_recorded_and_feeds_one_merchant() {
    let flow = Flow::start().await;
    let shop = flow.sb().company(TENANT);
    let seen = status(&flow.app, flow.merchant).await;
    assert_eq!(seen["status"], "CONNECTED", "{seen}");
    assert_eq!(
        seen["company"],
        json!({
            "name": shop.company_name,
            "organizationNumber": shop.organization_number,
            "tenantId": shop.database_number.expect("database number").to_string(),
        })
    );

    // Another merchant approving the same Fortnox company is refused.
    let e = new_merchant(&flow, "E AB").await;
    let e_user = token_for("erik", Role::Merchant, vec![e]);
    let body = connect_as(&flow.app, &e_user, e).await;
    assert_eq!(
        refusal(&body),
        (Some("CONFLICT"), Some("FORTNOX_COMPANY_TAKEN")),
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&shop.company_name)),
        "{body}"
    );
    assert_eq!(status(&flow.app, e).await["status"], "NOT_CONNECTED");
    flow.stop().await;
}

#[tokio::test]
async fn a_reconnect_to_another_company_needs_a_disconnect_first() {
    let flow = Flow::start().await;
    flow.sb()
        .create_tenant_with_company(
            OTHER,
            None,
            CompanySettings {
                company_name: Some("Second Company AB".into()),
                organization_number: Some("556000-0002".into()),
                ..CompanySettings::default()
            },
        )
        .expect("tenant");
    let before = status(&flow.app, flow.merchant).await;

    // Reconnecting to the same company (e.g. after revoked access) is fine.
    let body = connect_as(&flow.app, &flow.admin, flow.merchant).await;
    assert_eq!(
        body["data"]["completeFortnoxConnection"]["company"], before["company"],
        "{body}"
    );

    // To another company: refused, and the connection stays as it was.
    flow.sb().set_authorize_tenant(OTHER);
    let body = connect_as(&flow.app, &flow.admin, flow.merchant).await;
    assert_eq!(
        refusal(&body),
        (Some("CONFLICT"), Some("FORTNOX_COMPANY_CHANGED")),
        "{body}"
    );
    assert_eq!(status(&flow.app, flow.merchant).await, before);
    let ways = flow
        .gql(
            "query($m: ID!) { wayOfDeliveryMappings(merchantId: $m) { code } }",
            json!({ "m": flow.merchant.to_string() }),
        )
        .await;
    assert!(
        ways["errors"].is_null(),
        "still reads the first company: {ways}"
    );

    // Disconnected first, the merchant may connect the other company.
    let body = flow
        .gql(
            "mutation($m: ID!) { disconnectFortnox(merchantId: $m) { status company { name } } }",
            json!({ "m": flow.merchant.to_string() }),
        )
        .await;
    assert_eq!(
        body["data"]["disconnectFortnox"],
        json!({ "status": "DISCONNECTED", "company": null })
    );
    let body = connect_as(&flow.app, &flow.admin, flow.merchant).await;
    assert_eq!(
        body["data"]["completeFortnoxConnection"]["company"]["name"], "Second Company AB",
        "{body}"
    );
    // And the first company is free for another merchant now.
    flow.sb().set_authorize_tenant(TENANT);
    let e = new_merchant(&flow, "E AB").await;
    let body = connect_as(&flow.app, &flow.admin, e).await;
    assert_eq!(
        body["data"]["completeFortnoxConnection"]["status"], "CONNECTED",
        "{body}"
    );
    flow.stop().await;
}

#[tokio::test]
async fn the_callback_hands_code_and_state_to_the_frontend() {
    let app = TestApp::spawn_with(|config| {
        config.fortnox.connect_return_url =
            Some("https://app.example.com/fortnox/connected?tab=1".into());
    })
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = client
        .get(app.url("/oauth/fortnox/callback?code=abc&state=s%26t"))
        .send()
        .await
        .expect("callback");
    assert_eq!(answer.status(), 303);
    assert_eq!(
        answer.headers()["location"],
        "https://app.example.com/fortnox/connected?tab=1&code=abc&state=s%26t"
    );
    let answer = client
        .get(app.url("/oauth/fortnox/callback?error=access_denied&state=s"))
        .send()
        .await
        .expect("callback");
    assert_eq!(
        answer.headers()["location"],
        "https://app.example.com/fortnox/connected?tab=1&state=s&error=access_denied"
    );
    app.stop().await;
}
