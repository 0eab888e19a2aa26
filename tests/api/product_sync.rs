//! The product sync (docs/rules.md rule 8) over HTTP against the Fortnox sandbox: the sync view
//! and its stock-location filter, products created from Fortnox articles (and the RESERVED
//! orders that waited for them), stock levels stored and pushed to Fortnox, and roles.

use std::time::Duration;

use crate::common::{assert_code, error_code, error_message, error_reason, eventually, token};
use crate::flow::{article, Flow, TENANT};
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::fortnox::types::{Article, Quantity};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

const SYNC: &str = "query($m: ID!) { productSync(merchantId: $m) {
    merchantId stockLocation missingProducts
    articles { articleNumber description ean weightGrams widthMm heightMm depthMm salesPrice quantityInStock defaultStockLocation productExists productId product { id sku } }
    productsNotInFortnox { id sku } } }";
const CREATE: &str = "mutation($m: ID!, $a: [String!]) { createProductsFromFortnox(merchantId: $m, articleNumbers: $a) {
    id merchantId sku name ean weightGrams widthMm heightMm depthMm price stockQuantity } }";
const REPORT: &str = "mutation($m: ID!, $l: [StockLevelInput!]!) { reportStockLevels(merchantId: $m, levels: $l) { id sku stockQuantity } }";
const SETTINGS: &str = "mutation($m: ID!, $s: String) { updateFortnoxSettings(merchantId: $m, stockLocation: $s) { stockLocation } }";
const INTEGRATION: &str =
    "query($m: ID!) { fortnoxIntegration(merchantId: $m) { status lastError } }";

fn numbers(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|a| a["articleNumber"].as_str().unwrap().to_owned())
        .collect()
}

fn skus(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

/// A stock article with every field the products take.
fn full_article(number: &str, location: Option<&str>) -> Article {
    Article {
        description: Some(format!("Blue T-shirt {number}")),
        ean: Some("7350000000017".into()),
        weight: Some(Quantity::from_i64(250)),
        width: Some(Quantity::from_i64(300)),
        height: Some(Quantity::from_i64(40)),
        depth: Some(Quantity::from_i64(200)),
        sales_price: Some(Quantity(Decimal::new(19950, 2))),
        default_stock_location: location.map(str::to_owned),
        ..article(number, true)
    }
}

impl Flow {
    fn m(&self) -> String {
        self.merchant.to_string()
    }

    async fn sync_view(&self) -> Value {
        let body = self.gql(SYNC, json!({ "m": self.m() })).await;
        assert!(body["errors"].is_null(), "{body}");
        body["data"]["productSync"].clone()
    }

    async fn create_from_fortnox(&self, token: &str, selection: Option<Vec<&str>>) -> Value {
        self.app
            .graphql(token, CREATE, json!({ "m": self.m(), "a": selection }))
            .await
    }

    fn merchant_token(&self) -> String {
        token(Role::Merchant, vec![self.merchant])
    }

    fn sandbox_stock(&self, number: &str) -> Option<String> {
        self.sb()
            .article(TENANT, number)
            .and_then(|a| a.quantity_in_stock)
            .map(|q| q.0.normalize().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_view_lists_stock_articles_beside_products_and_creates_the_missing_ones() {
    let flow = Flow::start().await;
    let inactive = Article {
        active: Some(false),
        ..article("OLD-1", true)
    };
    flow.sb()
        .add_articles(TENANT, vec![full_article("ART-9", None), inactive]);
    flow.add_product("ART-1").await;
    flow.add_product("LOCAL-1").await;

    // Stock articles only (not the service FRAKT, not the inactive OLD-1), the held
    // product marked, the product Fortnox lacks listed apart.
    let view = flow.sync_view().await;
    assert_eq!(
        numbers(&view["articles"]),
        vec!["ART-1", "ART-2", "ART-3", "ART-9"],
        "{view}"
    );
    assert_eq!(view["stockLocation"], Value::Null);
    assert_eq!(view["missingProducts"], 3);
    let art1 = &view["articles"][0];
    assert_eq!(art1["productExists"], true, "{view}");
    assert_eq!(art1["productId"], art1["product"]["id"]);
    assert!(art1["productId"].is_string());
    let art9 = &view["articles"][3];
    assert_eq!(
        (art9["productExists"].clone(), art9["productId"].clone()),
        (json!(false), Value::Null),
        "{view}"
    );
    assert_eq!(art9["description"], "Blue T-shirt ART-9");
    assert_eq!(
        (
            art9["ean"].as_str(),
            art9["weightGrams"].as_i64(),
            art9["salesPrice"].as_str()
        ),
        (Some("7350000000017"), Some(250), Some("199.5"))
    );
    assert_eq!(
        (
            art9["widthMm"].as_i64(),
            art9["heightMm"].as_i64(),
            art9["depthMm"].as_i64()
        ),
        (Some(300), Some(40), Some(200))
    );
    assert_eq!(skus(&view["productsNotInFortnox"]), vec!["LOCAL-1"]);

    // A selection: the fields mapped from the article; a held one skipped.
    let me = flow.merchant_token();
    let body = flow.create_from_fortnox(&me, Some(vec!["ART-9"])).await;
    let created = &body["data"]["createProductsFromFortnox"];
    assert_eq!(skus(created), vec!["ART-9"], "{body}");
    let p = &created[0];
    assert_eq!(
        (p["name"].as_str(), p["ean"].as_str(), p["price"].as_str()),
        (
            Some("Blue T-shirt ART-9"),
            Some("7350000000017"),
            Some("199.5")
        )
    );
    assert_eq!(
        (
            p["weightGrams"].as_i64(),
            p["widthMm"].as_i64(),
            p["heightMm"].as_i64(),
            p["depthMm"].as_i64()
        ),
        (Some(250), Some(300), Some(40), Some(200))
    );
    assert_eq!(p["merchantId"], flow.m());
    let body = flow
        .create_from_fortnox(&me, Some(vec!["ART-1", " ART-2 "]))
        .await;
    assert_eq!(
        skus(&body["data"]["createProductsFromFortnox"]),
        vec!["ART-2"],
        "ART-1 is held already: {body}"
    );

    // Not a stock article, or not in Fortnox at all: a clear error, nothing created.
    let body = flow
        .create_from_fortnox(&me, Some(vec!["ART-3", "FRAKT", "NOPE"]))
        .await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("INVALID_INPUT"), Some("UNKNOWN_ARTICLE")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("`FRAKT`")
            && error_message(&body).contains("`NOPE`")
            && error_message(&body).contains("productSync"),
        "{body}"
    );
    assert!(
        flow.app
            .store()
            .product_by_sku(flow.merchant, "ART-3")
            .await
            .unwrap()
            .is_none(),
        "nothing created"
    );

    // All: the one left; then nothing.
    let body = flow.create_from_fortnox(&me, None).await;
    let created = &body["data"]["createProductsFromFortnox"];
    assert_eq!(skus(created), vec!["ART-3"], "{body}");
    assert_eq!(created[0]["name"], "Article ART-3");
    assert_eq!(created[0]["price"], "100");
    let body = flow.create_from_fortnox(&me, None).await;
    assert_eq!(
        body["data"]["createProductsFromFortnox"],
        json!([]),
        "{body}"
    );
    let view = flow.sync_view().await;
    assert_eq!(view["missingProducts"], 0);
    assert!(
        view["articles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["productExists"] == true),
        "{view}"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_location_setting_filters_the_articles_read_one_by_one() {
    let flow = Flow::start().await;
    flow.sb().add_articles(
        TENANT,
        vec![
            full_article("LOC-A", Some("A1")),
            full_article("LOC-B", Some("B2")),
            full_article("LOC-A2", Some("A1")),
        ],
    );

    // Without a stock location, the list is enough: no single article is read.
    flow.sb().clear_calls();
    let view = flow.sync_view().await;
    assert_eq!(
        numbers(&view["articles"]),
        vec!["ART-1", "ART-2", "ART-3", "LOC-A", "LOC-A2", "LOC-B"]
    );
    let single_reads = || {
        flow.sb()
            .calls()
            .iter()
            .filter(|c| c.method == "GET" && c.path.contains("/articles/"))
            .count()
    };
    assert_eq!(single_reads(), 0);

    let body = flow
        .gql(SETTINGS, json!({ "m": flow.m(), "s": "A1" }))
        .await;
    assert_eq!(
        body["data"]["updateFortnoxSettings"]["stockLocation"], "A1",
        "{body}"
    );
    let view = flow.sync_view().await;
    assert_eq!(view["stockLocation"], "A1");
    assert_eq!(
        numbers(&view["articles"]),
        vec!["LOC-A", "LOC-A2"],
        "{view}"
    );
    assert_eq!(view["articles"][0]["defaultStockLocation"], "A1");
    assert!(
        single_reads() >= 6,
        "each stock article read on its own: {}",
        single_reads()
    );

    let me = flow.merchant_token();
    let body = flow.create_from_fortnox(&me, Some(vec!["LOC-B"])).await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("INVALID_INPUT"), Some("UNKNOWN_ARTICLE")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("`A1`"),
        "the message names the filter: {body}"
    );
    let body = flow.create_from_fortnox(&me, None).await;
    assert_eq!(
        skus(&body["data"]["createProductsFromFortnox"]),
        vec!["LOC-A", "LOC-A2"],
        "{body}"
    );

    // Cleared: every stock article again.
    let body = flow.gql(SETTINGS, json!({ "m": flow.m(), "s": "" })).await;
    assert_eq!(
        body["data"]["updateFortnoxSettings"]["stockLocation"],
        Value::Null,
        "{body}"
    );
    let view = flow.sync_view().await;
    assert_eq!(view["articles"].as_array().unwrap().len(), 6);
    assert_eq!(view["missingProducts"], 4);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_order_waiting_for_a_product_goes_on_once_it_is_created_from_fortnox() {
    let flow = Flow::start().await;
    flow.add_rule("DHL*", "DHL_EXPRESS_WORLDWIDE").await;
    let row = |article: &str| json!({"ArticleNumber": article, "Description": "Item", "OrderedQuantity": "1", "Price": 100, "VAT": 25});
    let document = flow.create_order(Flow::order_json(json!([row("ART-1"), row("ART-2")])));
    flow.sync().await;
    assert!(flow.wait_for(&document, OrderState::Reserved, WAIT).await);
    let reasons = Flow::reasons(&flow.order_json_of(&document).await).join(" | ");
    assert!(
        reasons.contains("ART-1") && reasons.contains("ART-2"),
        "{reasons}"
    );

    let body = flow
        .create_from_fortnox(&flow.merchant_token(), Some(vec!["ART-1", "ART-2"]))
        .await;
    assert_eq!(
        skus(&body["data"]["createProductsFromFortnox"]),
        vec!["ART-1", "ART-2"],
        "{body}"
    );
    assert!(
        flow.wait_for(&document, OrderState::Sent, WAIT).await,
        "{}",
        flow.order_json_of(&document).await
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_stock_levels_are_stored_and_pushed_to_fortnox() {
    let flow = Flow::start().await;
    let body = flow.create_from_fortnox(&flow.admin, None).await;
    assert_eq!(
        skus(&body["data"]["createProductsFromFortnox"]),
        vec!["ART-1", "ART-2", "ART-3"],
        "{body}"
    );
    flow.add_product("LOCAL-1").await;

    let levels =
        json!([{ "sku": "ART-2", "quantity": "0.50" }, { "sku": "ART-1", "quantity": "7" }]);
    let body = flow
        .app
        .graphql(
            &flow.warehouse,
            REPORT,
            json!({ "m": flow.m(), "l": levels }),
        )
        .await;
    let updated = &body["data"]["reportStockLevels"];
    assert_eq!(skus(updated), vec!["ART-2", "ART-1"], "{body}");
    assert_eq!(
        (
            updated[0]["stockQuantity"].as_str(),
            updated[1]["stockQuantity"].as_str()
        ),
        (Some("0.5"), Some("7"))
    );
    let stored = flow
        .app
        .store()
        .product_by_sku(flow.merchant, "ART-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stock_quantity.as_deref(), Some("7"));
    let pushed = eventually(WAIT, || async {
        flow.sandbox_stock("ART-1").as_deref() == Some("7")
            && flow.sandbox_stock("ART-2").as_deref() == Some("0.5")
    })
    .await;
    assert!(
        pushed,
        "QuantityInStock in Fortnox: {:?} {:?}",
        flow.sandbox_stock("ART-1"),
        flow.sandbox_stock("ART-2")
    );
    assert_eq!(
        flow.sandbox_stock("ART-3").as_deref(),
        Some("100"),
        "an unreported article is left alone"
    );

    // An unknown SKU: an error naming it, and nothing stored or pushed.
    let levels = json!([{ "sku": "ART-1", "quantity": "9" }, { "sku": "NOPE-1", "quantity": "1" }]);
    let body = flow
        .app
        .graphql(
            &flow.warehouse,
            REPORT,
            json!({ "m": flow.m(), "l": levels }),
        )
        .await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("INVALID_INPUT"), Some("UNKNOWN_SKU")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("`NOPE-1`")
            && error_message(&body).contains("nothing was stored"),
        "{body}"
    );
    let body = flow
        .app
        .graphql(
            &flow.warehouse,
            REPORT,
            json!({ "m": flow.m(), "l": [{ "sku": "ART-1", "quantity": "-2" }] }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stored = flow
        .app
        .store()
        .product_by_sku(flow.merchant, "ART-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stock_quantity.as_deref(), Some("7"));
    assert_eq!(flow.sandbox_stock("ART-1").as_deref(), Some("7"));

    // A product Fortnox has no article for: stored here, and Fortnox's refusal is kept on
    // the integration rather than lost.
    let body = flow
        .app
        .graphql(
            &flow.warehouse,
            REPORT,
            json!({ "m": flow.m(), "l": [{ "sku": "LOCAL-1", "quantity": "3" }] }),
        )
        .await;
    assert_eq!(
        body["data"]["reportStockLevels"][0]["stockQuantity"], "3",
        "{body}"
    );
    let last_error = || async {
        flow.gql(INTEGRATION, json!({ "m": flow.m() })).await["data"]["fortnoxIntegration"]
            ["lastError"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let recorded = eventually(WAIT, || async { last_error().await.contains("LOCAL-1") }).await;
    let last_error = last_error().await;
    assert!(
        recorded,
        "the refusal is on the integration: {last_error:?}"
    );
    assert!(last_error.contains("refused"), "{last_error}");
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_tenants_and_a_missing_connection_are_answered_clearly() {
    // Fortnox read at every request, so that the revoked access below shows at once.
    let flow = Flow::start_with(|c| c.fortnox.live_read_cache = Duration::ZERO).await;
    let me = flow.merchant_token();
    let partner = token(Role::Partner, vec![flow.merchant]);
    let other = token(Role::Merchant, vec![flow.merchant + 1000]);

    // A partner may look but not create; another tenant sees nothing.
    let body = flow
        .app
        .graphql(&partner, SYNC, json!({ "m": flow.m() }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = flow.create_from_fortnox(&partner, None).await;
    assert_code(&body, "FORBIDDEN");
    let body = flow.create_from_fortnox(&other, None).await;
    assert_code(&body, "NOT_FOUND");
    let body = flow
        .app
        .graphql(&other, SYNC, json!({ "m": flow.m() }))
        .await;
    assert_code(&body, "NOT_FOUND");
    assert!(flow
        .app
        .store()
        .product_by_sku(flow.merchant, "ART-1")
        .await
        .unwrap()
        .is_none());

    // Stock is the warehouse's (and admins') to report, not the merchant's or a partner's.
    flow.add_product("ART-1").await;
    let levels = json!([{ "sku": "ART-1", "quantity": "5" }]);
    for who in [&me, &partner] {
        let body = flow
            .app
            .graphql(who, REPORT, json!({ "m": flow.m(), "l": levels }))
            .await;
        assert_code(&body, "FORBIDDEN");
    }
    let body = flow
        .app
        .graphql(&flow.admin, REPORT, json!({ "m": flow.m(), "l": levels }))
        .await;
    assert_eq!(
        body["data"]["reportStockLevels"][0]["stockQuantity"], "5",
        "{body}"
    );
    assert!(
        eventually(WAIT, || async {
            flow.sandbox_stock("ART-1").as_deref() == Some("5")
        })
        .await
    );

    // Not connected, then access revoked: errors that say what to do.
    let body = flow
        .gql(
            "mutation { createMerchant(name: \"Unconnected AB\") { id } }",
            json!({}),
        )
        .await;
    let unconnected = body["data"]["createMerchant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = flow.gql(SYNC, json!({ "m": unconnected })).await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("FORTNOX_NOT_CONNECTED")),
        "{body}"
    );
    assert!(error_message(&body).contains("connectFortnox"), "{body}");
    let body = flow.gql(CREATE, json!({ "m": unconnected })).await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("FORTNOX_NOT_CONNECTED")),
        "{body}"
    );
    flow.sb().revoke_tokens(TENANT);
    let body = flow.gql(SYNC, json!({ "m": flow.m() })).await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("FORTNOX_NEEDS_REAUTHORIZATION")),
        "{body}"
    );
    assert!(error_message(&body).contains("connectFortnox"), "{body}");
    flow.stop().await;
}
