//! The catalogue over HTTP: products, shipping rules, and the way-of-delivery mapping
//! preview against the in-process Fortnox sandbox; tenant scope and roles; and the
//! revalidation of RESERVED orders that a new product or rule queues.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{
    admin_token, assert_code, create_merchant, error_code, error_message, error_reason,
    insert_order, order_tasks, token, TestApp,
};
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::fortnox::crypto::TokenCipher;
use fortnox_fulfilment::fortnox::types::WayOfDelivery;
use fortnox_fulfilment::fortnox::{TokenSet, TokenStore};
use fortnox_fulfilment::store::fortnox_tokens::DbTokenStore;
use fortnox_sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

const KEY: &str = "00000000000000000000000000000000000000000000000000000000000000c4";
const TENANT: &str = "t1";

const CREATE: &str = "mutation($m: ID!, $sku: String!, $name: String!, $ean: String, $w: Int, $price: String) {
    createProduct(merchantId: $m, sku: $sku, name: $name, ean: $ean, weightGrams: $w, widthMm: 100, heightMm: 50, depthMm: 20, price: $price) {
        id merchantId sku name ean weightGrams widthMm heightMm depthMm price } }";
const PAGE: &str = "query($m: ID!, $first: Int, $after: String) {
    products(merchantId: $m, first: $first, after: $after) { edges { cursor node { id sku } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
const ADD_RULE: &str = "mutation($m: ID!, $p: String!, $c: String!) {
    addShippingRule(merchantId: $m, pattern: $p, shippingMethodCode: $c) { id pattern literalCharacters shippingMethod { code carrier name } } }";
const RULES: &str = "query($m: ID!) { shippingRules(merchantId: $m) { id pattern literalCharacters shippingMethod { code carrier name } } }";
const REMOVE_RULE: &str = "mutation($id: ID!) { removeShippingRule(id: $id) { id pattern } }";
const MAPPINGS: &str = "query($m: ID!) { wayOfDeliveryMappings(merchantId: $m) {
    code description outcome message rule { id pattern } shippingMethod { code } conflictingRules { id pattern shippingMethod { code } } } }";

/// Maps the way of delivery "DHL" to DHL Parcel Connect; returns the answer, checked.
async fn add_dhl_rule(app: &TestApp, token: &str, merchant: i64) -> Value {
    let body = app
        .graphql(
            token,
            ADD_RULE,
            json!({ "m": merchant.to_string(), "p": "DHL", "c": "DHL_PARCEL_CONNECT" }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body
}

async fn create(app: &TestApp, token: &str, merchant: i64, sku: &str) -> Value {
    app.graphql(token, CREATE, json!({ "m": merchant.to_string(), "sku": sku, "name": format!("Product {sku}"), "price": "10.00" })).await
}

#[tokio::test]
async fn products_are_created_updated_and_listed_page_by_page() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Mine").await;
    let me = token(Role::Merchant, vec![merchant]);

    let body = app
        .graphql(&me, CREATE, json!({ "m": merchant.to_string(), "sku": "  ART-1 ", "name": " T-shirt ", "ean": "7350000000017", "w": 250, "price": "199.50" }))
        .await;
    let product = &body["data"]["createProduct"];
    assert_eq!(product["sku"], "ART-1", "the SKU is trimmed: {body}");
    assert_eq!(product["name"], "T-shirt");
    assert_eq!(product["merchantId"], merchant.to_string());
    assert_eq!(
        (
            product["ean"].as_str(),
            product["weightGrams"].as_i64(),
            product["price"].as_str()
        ),
        (Some("7350000000017"), Some(250), Some("199.50"))
    );
    assert_eq!(
        (
            product["widthMm"].as_i64(),
            product["heightMm"].as_i64(),
            product["depthMm"].as_i64()
        ),
        (Some(100), Some(50), Some(20))
    );
    let id = product["id"].as_str().unwrap().to_owned();

    // The same SKU again is refused with an error that says so; so are bad inputs.
    let body = create(&app, &me, merchant, "ART-1").await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("DUPLICATE_SKU")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("ART-1") && error_message(&body).contains("already exists"),
        "{body}"
    );
    let body = create(&app, &me, merchant, "   ").await;
    assert_code(&body, "INVALID_INPUT");
    assert!(error_message(&body).contains("sku"), "{body}");
    let body = app
        .graphql(
            &me,
            CREATE,
            json!({ "m": merchant.to_string(), "sku": "ART-X", "name": "X", "price": "12,50" }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    assert!(error_message(&body).contains("decimal point"), "{body}");
    let body = app
        .graphql(
            &me,
            CREATE,
            json!({ "m": merchant.to_string(), "sku": "ART-X", "name": "X", "w": -1 }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");

    // Update: given fields change, null clears, omitted stay; the SKU is not an argument.
    let update = "mutation($id: ID!) { updateProduct(id: $id, name: \"Blue T-shirt\", ean: null, price: \"149.00\") { id sku name ean weightGrams price } }";
    let body = app.graphql(&me, update, json!({ "id": id })).await;
    let updated = &body["data"]["updateProduct"];
    assert_eq!(
        (updated["sku"].as_str(), updated["name"].as_str()),
        (Some("ART-1"), Some("Blue T-shirt")),
        "{body}"
    );
    assert_eq!(
        (
            updated["ean"].clone(),
            updated["weightGrams"].as_i64(),
            updated["price"].as_str()
        ),
        (Value::Null, Some(250), Some("149.00"))
    );
    let body = app
        .graphql(
            &me,
            "mutation($id: ID!) { updateProduct(id: $id, sku: \"NEW\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        body["errors"].is_array() && body["data"].is_null(),
        "the SKU cannot be changed: {body}"
    );
    let body = app
        .graphql(
            &me,
            "mutation($id: ID!) { updateProduct(id: $id, price: \"-3\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");

    // Seven products in all, listed three at a time in creation order.
    for n in 2..=7 {
        let body = create(&app, &me, merchant, &format!("ART-{n}")).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let mut skus = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = app
            .graphql(
                &me,
                PAGE,
                json!({ "m": merchant.to_string(), "first": 3, "after": after }),
            )
            .await;
        let connection = &body["data"]["products"];
        let edges = connection["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        skus.extend(
            edges
                .iter()
                .map(|e| e["node"]["sku"].as_str().unwrap().to_owned()),
        );
        assert_eq!(connection["pageInfo"]["hasPreviousPage"], after.is_some());
        pages += 1;
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = Some(
            connection["pageInfo"]["endCursor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(pages, 3);
    assert_eq!(
        skus,
        (1..=7).map(|n| format!("ART-{n}")).collect::<Vec<_>>()
    );

    // The warehouse and partners read products; a partner cannot write them.
    let warehouse = token(Role::Warehouse, vec![]);
    let body = app
        .graphql(
            &warehouse,
            PAGE,
            json!({ "m": merchant.to_string(), "first": 50 }),
        )
        .await;
    assert_eq!(
        body["data"]["products"]["edges"].as_array().map(Vec::len),
        Some(7),
        "{body}"
    );
    let partner = token(Role::Partner, vec![merchant]);
    let body = app
        .graphql(
            &partner,
            "query($id: ID!) { product(id: $id) { sku } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["product"]["sku"], "ART-1", "{body}");
    let body = create(&app, &partner, merchant, "ART-P").await;
    assert_code(&body, "FORBIDDEN");
    let body = create(&app, &warehouse, merchant, "ART-W").await;
    assert_code(&body, "FORBIDDEN");
    let body = app
        .graphql(
            &partner,
            "mutation($id: ID!) { updateProduct(id: $id, name: \"x\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_code(&body, "FORBIDDEN");

    // An admin may create for any merchant; a missing merchant is not found.
    let body = create(&app, &admin_token(), merchant, "ART-A").await;
    assert_eq!(body["data"]["createProduct"]["sku"], "ART-A", "{body}");
    let body = create(&app, &admin_token(), 999_999, "ART-A").await;
    assert_code(&body, "NOT_FOUND");
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_products_are_not_found() {
    let app = TestApp::spawn().await;
    let mine = create_merchant(app.store(), "Mine").await;
    let theirs = create_merchant(app.store(), "Theirs").await;
    let body = create(
        &app,
        &token(Role::Merchant, vec![theirs]),
        theirs,
        "SECRET-1",
    )
    .await;
    let their_product = body["data"]["createProduct"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let me = token(Role::Merchant, vec![mine]);

    let body = app
        .graphql(
            &me,
            "query($id: ID!) { product(id: $id) { sku } }",
            json!({ "id": their_product }),
        )
        .await;
    assert_eq!(body["data"]["product"], Value::Null, "{body}");
    let body = app
        .graphql(
            &me,
            "mutation($id: ID!) { updateProduct(id: $id, name: \"mine now\") { id } }",
            json!({ "id": their_product }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");
    assert_eq!(error_message(&body), "product not found");
    let body = app
        .graphql(
            &me,
            "mutation { updateProduct(id: \"999999\", name: \"x\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_message(&body),
        "product not found",
        "a missing product reads the same: {body}"
    );
    let body = app
        .graphql(&me, PAGE, json!({ "m": theirs.to_string() }))
        .await;
    assert_code(&body, "NOT_FOUND");
    let body = create(&app, &me, theirs, "INTRUDER").await;
    assert_code(&body, "NOT_FOUND");
    // Each merchant has its own SKUs: the same SKU is fine for another merchant.
    let body = create(&app, &me, mine, "SECRET-1").await;
    assert_eq!(body["data"]["createProduct"]["sku"], "SECRET-1", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn shipping_rules_are_added_listed_and_removed() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Mine").await;
    let other = create_merchant(app.store(), "Other").await;
    let me = token(Role::Merchant, vec![merchant]);
    let m = merchant.to_string();

    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": " DHL* ", "c": "DHL_PARCEL_CONNECT" }),
        )
        .await;
    let rule = &body["data"]["addShippingRule"];
    assert_eq!(
        (rule["pattern"].as_str(), rule["literalCharacters"].as_i64()),
        (Some("DHL*"), Some(3)),
        "{body}"
    );
    assert_eq!(
        rule["shippingMethod"],
        json!({ "code": "DHL_PARCEL_CONNECT", "carrier": "DHL Parcel", "name": "DHL Parcel Connect" })
    );
    let dhl = rule["id"].as_str().unwrap().to_owned();
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "*", "c": "postnord_mypack_home" }),
        )
        .await;
    assert_eq!(
        body["data"]["addShippingRule"]["shippingMethod"]["code"], "POSTNORD_MYPACK_HOME",
        "codes ignore case: {body}"
    );
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "DHL-Express*", "c": "DHL_EXPRESS_DOMESTIC" }),
        )
        .await;
    let express = body["data"]["addShippingRule"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();

    // Listed most specific first, with their methods.
    let body = app.graphql(&me, RULES, json!({ "m": m })).await;
    let listed: Vec<(&str, i64)> = body["data"]["shippingRules"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| {
            (
                r["pattern"].as_str().unwrap(),
                r["literalCharacters"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, vec![("DHL-Express*", 11), ("DHL*", 3), ("*", 0)]);

    // Refusals that say what to do.
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "   ", "c": "DHL_PARCEL_CONNECT" }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    assert!(error_message(&body).contains("empty"), "{body}");
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "A\tB", "c": "DHL_PARCEL_CONNECT" }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "x".repeat(101), "c": "DHL_PARCEL_CONNECT" }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "UPS*", "c": "UPS_STANDARD" }),
        )
        .await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("INVALID_INPUT"), Some("UNKNOWN_SHIPPING_METHOD")),
        "{body}"
    );
    assert!(
        error_message(&body).contains("UPS_STANDARD")
            && error_message(&body).contains("shippingMethods"),
        "{body}"
    );
    assert!(
        error_message(&body).contains("DHL_PARCEL_CONNECT"),
        "the known codes are listed: {body}"
    );
    let body = app
        .graphql(
            &me,
            ADD_RULE,
            json!({ "m": m, "p": "dhl*", "c": "GLS_BUSINESS_PARCEL" }),
        )
        .await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("DUPLICATE_SHIPPING_RULE")),
        "{body}"
    );

    // Scope and roles: partners read, the warehouse does not, only merchants and admins write.
    let partner = token(Role::Partner, vec![merchant]);
    let body = app.graphql(&partner, RULES, json!({ "m": m })).await;
    assert_eq!(
        body["data"]["shippingRules"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
    let body = app
        .graphql(
            &partner,
            ADD_RULE,
            json!({ "m": m, "p": "GLS*", "c": "GLS_BUSINESS_PARCEL" }),
        )
        .await;
    assert_code(&body, "FORBIDDEN");
    let body = app
        .graphql(&partner, REMOVE_RULE, json!({ "id": dhl }))
        .await;
    assert_code(&body, "FORBIDDEN");
    let body = app
        .graphql(&token(Role::Warehouse, vec![]), RULES, json!({ "m": m }))
        .await;
    assert_code(&body, "FORBIDDEN");
    let stranger = token(Role::Merchant, vec![other]);
    let body = app.graphql(&stranger, RULES, json!({ "m": m })).await;
    assert_code(&body, "NOT_FOUND");
    let body = app
        .graphql(
            &stranger,
            ADD_RULE,
            json!({ "m": m, "p": "GLS*", "c": "GLS_BUSINESS_PARCEL" }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");
    let body = app
        .graphql(&stranger, REMOVE_RULE, json!({ "id": dhl }))
        .await;
    assert_eq!(
        error_code(&body),
        Some("NOT_FOUND"),
        "another tenant's rule is not found: {body}"
    );

    let body = app.graphql(&me, REMOVE_RULE, json!({ "id": dhl })).await;
    assert_eq!(
        body["data"]["removeShippingRule"],
        json!({ "id": dhl, "pattern": "DHL*" }),
        "{body}"
    );
    let body = app.graphql(&me, REMOVE_RULE, json!({ "id": dhl })).await;
    assert_eq!(
        error_code(&body),
        Some("NOT_FOUND"),
        "removed twice: {body}"
    );
    let body = app
        .graphql(&admin_token(), REMOVE_RULE, json!({ "id": express }))
        .await;
    assert!(body["errors"].is_null(), "admins remove any rule: {body}");
    let body = app.graphql(&me, RULES, json!({ "m": m })).await;
    assert_eq!(
        body["data"]["shippingRules"],
        json!([{ "id": body["data"]["shippingRules"][0]["id"], "pattern": "*", "literalCharacters": 0, "shippingMethod": { "code": "POSTNORD_MYPACK_HOME", "carrier": "PostNord", "name": "PostNord MyPack Home" } }])
    );
    app.stop().await;
}

/// Forces an order into RESERVED and returns how many validate tasks it has so far.
async fn reserved_order(app: &TestApp, merchant: i64, document: &str) -> (i64, usize) {
    let order = insert_order(app.store(), merchant, document).await;
    let force = "mutation($id: ID!) { forceOrderState(orderId: $id, state: RESERVED, reason: \"waiting for the catalogue\") { state } }";
    // The order's own validation may have reserved it first (no products yet): fine too.
    // It may also change the order between the force's read and write (CONFLICT): then
    // the force is asked again.
    let mut attempts = 0;
    loop {
        let body = app
            .graphql(&admin_token(), force, json!({ "id": order.to_string() }))
            .await;
        let already = body["errors"][0]["message"] == "the order is already RESERVED";
        if already || body["data"]["forceOrderState"]["state"] == "RESERVED" {
            break;
        }
        attempts += 1;
        assert!(
            crate::common::error_code(&body) == Some("CONFLICT") && attempts < 5,
            "{body}"
        );
    }
    // Count only once that validation (and any retry of it) is over, so that the tasks
    // counted later are the re-checks the test is about.
    let settled = crate::common::eventually(std::time::Duration::from_secs(60), || async {
        !fortnox_fulfilment::store::jobs_table::has_live_job(&app.store().pool, order)
            .await
            .unwrap_or(true)
    })
    .await;
    assert!(settled, "the order's own validation finished");
    (
        order,
        order_tasks(app.store(), "validate_order", order)
            .await
            .len(),
    )
}

#[tokio::test]
async fn a_new_product_or_rule_queues_a_recheck_of_reserved_orders() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Mine").await;
    let other = create_merchant(app.store(), "Other").await;
    let me = token(Role::Merchant, vec![merchant]);
    let (order, before) = reserved_order(&app, merchant, "1").await;
    let (other_order, other_before) = reserved_order(&app, other, "1").await;

    let body = create(&app, &me, merchant, "ART-1").await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        order_tasks(app.store(), "validate_order", order)
            .await
            .len(),
        before + 1,
        "the RESERVED order is re-checked"
    );
    assert_eq!(
        order_tasks(app.store(), "validate_order", other_order)
            .await
            .len(),
        other_before,
        "another merchant's order is not"
    );

    add_dhl_rule(&app, &me, merchant).await;
    let tasks = order_tasks(app.store(), "validate_order", order).await;
    assert!(
        tasks.len() >= before + 2,
        "adding a rule re-checks too: {tasks:?}"
    );
    assert_eq!(
        order_tasks(app.store(), "validate_order", other_order)
            .await
            .len(),
        other_before
    );
    app.stop().await;
}

const HISTORY: &str =
    "query($id: ID!) { order(id: $id) { state events { kind fromState toState cause message } } }";

/// Holds the next order check after its catalogue read, inserts an order (ART-1, way of
/// delivery DHL), sends the mutation `change` while its check is held, lets the check go,
/// and expects the order to be checked again and VALIDATED.
async fn check_racing(
    app: &TestApp,
    me: &str,
    merchant: i64,
    document: &str,
    change: &str,
    variables: Value,
) {
    let mut held = app.app.faults.hold_next_check();
    let order = insert_order(app.store(), merchant, document).await;
    assert_eq!(
        held.reached(Duration::from_secs(60)).await,
        Some(order),
        "the order's check read the catalogue and was held"
    );
    let body = app.graphql(me, change, variables).await;
    assert!(body["errors"].is_null(), "{body}");
    held.release();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (history, validated) = loop {
        let history = app
            .graphql(&admin_token(), HISTORY, json!({ "id": order.to_string() }))
            .await;
        let validated = history["data"]["order"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["toState"] == "VALIDATED"));
        if validated || tokio::time::Instant::now() >= deadline {
            break (history, validated);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        validated,
        "the order is checked again with the changed catalogue, not left RESERVED: {history}"
    );
    let transitions: Vec<(&str, &str)> = history["data"]["order"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "TRANSITION")
        .map(|e| {
            (
                e["toState"].as_str().unwrap_or("?"),
                e["cause"].as_str().unwrap_or("?"),
            )
        })
        .take(3)
        .collect();
    // The held check read the catalogue before the change: its verdict stands in the
    // history, and the check made again with the change passes.
    assert_eq!(
        transitions,
        [
            ("IMPORTED", "imported"),
            ("RESERVED", "checks_failed"),
            ("VALIDATED", "revalidated")
        ],
        "{history}"
    );
}

/// A product created or a shipping rule added while an order's check is between reading
/// the catalogue and reserving the order: the re-check that the change queues for RESERVED
/// orders cannot see this one yet, so reserving it notices the catalogue moved and checks
/// it again.
#[tokio::test]
async fn a_catalogue_change_during_a_check_is_not_missed() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Mine").await;
    let me = token(Role::Merchant, vec![merchant]);
    let body = add_dhl_rule(&app, &me, merchant).await;
    let rule_id = body["data"]["addShippingRule"]["id"].clone();

    // The product the order needs is created while its check is held.
    let product =
        json!({ "m": merchant.to_string(), "sku": "ART-1", "name": "T-shirt", "price": "10.00" });
    check_racing(&app, &me, merchant, "1", CREATE, product).await;

    // The rule the next order needs is added while its check is held.
    let body = app
        .graphql(&me, REMOVE_RULE, json!({ "id": rule_id }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let rule = json!({ "m": merchant.to_string(), "p": "DHL", "c": "DHL_PARCEL_CONNECT" });
    check_racing(&app, &me, merchant, "2", ADD_RULE, rule).await;
    app.stop().await;
}

fn way(code: &str, description: &str) -> WayOfDelivery {
    WayOfDelivery {
        url: None,
        code: code.into(),
        description: Some(description.into()),
        description_english: None,
    }
}

#[tokio::test]
async fn the_mapping_preview_shows_each_fortnox_way_of_delivery() {
    let sandbox = Sandbox::start(SandboxConfig {
        rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let sb = sandbox.handle();
    sb.create_tenant(TENANT, None);
    sb.add_ways_of_delivery(
        TENANT,
        vec![
            way("DHL", "DHL Paket"),
            way("DHL-EXP", "DHL Express"),
            way("PN2", "PostNord MyPack Home"),
            way("UPS", "UPS Standard"),
        ],
    );
    let (api, auth) = (sandbox.api_base(), sandbox.auth_base());
    let app = TestApp::spawn_with(|config| {
        config.fortnox.api_url = api;
        config.fortnox.auth_url = auth;
        config.fortnox.client_id = Some("sandbox-client".into());
        config.fortnox.client_secret = Some("sandbox-secret".into());
        config.auth.token_encryption_key = Some(KEY.into());
        // Fortnox read at every request, so that the revoked access below shows at once.
        config.fortnox.live_read_cache = std::time::Duration::ZERO;
    })
    .await;
    let merchant = create_merchant(app.store(), "Connected").await;
    let unconnected = create_merchant(app.store(), "Not connected").await;
    let tokens = DbTokenStore::new(
        app.store().pool.clone(),
        TokenCipher::from_key_text(KEY).expect("key"),
    );
    let issued = sb.issue_tokens(TENANT);
    tokens
        .save(
            &merchant.to_string(),
            &TokenSet::from_response(issued, chrono::Utc::now()),
        )
        .await
        .expect("save tokens");

    let me = token(Role::Merchant, vec![merchant, unconnected]);
    let m = merchant.to_string();
    for (pattern, code) in [
        ("DHL*", "DHL_PARCEL_CONNECT"),
        ("*DHL", "DHL_EXPRESS_DOMESTIC"),
        ("postnord*", "POSTNORD_MYPACK_HOME"),
    ] {
        let body = app
            .graphql(&me, ADD_RULE, json!({ "m": m, "p": pattern, "c": code }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }

    let body = app.graphql(&me, MAPPINGS, json!({ "m": m })).await;
    let mappings = body["data"]["wayOfDeliveryMappings"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let codes: Vec<&str> = mappings
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec!["DHL", "DHL-EXP", "PN2", "UPS"],
        "every way of delivery, by code"
    );

    // DHL: `DHL*` and `*DHL` both match with 3 literal characters and different methods.
    let dhl = &mappings[0];
    assert_eq!(
        (dhl["outcome"].as_str(), dhl["description"].as_str()),
        (Some("CONFLICT"), Some("DHL Paket")),
        "{dhl}"
    );
    assert_eq!(
        (dhl["rule"].clone(), dhl["shippingMethod"].clone()),
        (Value::Null, Value::Null)
    );
    let tied: HashSet<&str> = dhl["conflictingRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(tied, HashSet::from(["DHL*", "*DHL"]));
    let message = dhl["message"].as_str().unwrap();
    assert!(
        message.contains("DHL*") && message.contains("*DHL") && message.contains("remove"),
        "{message}"
    );

    // DHL-EXP: only `DHL*` matches.
    assert_eq!(mappings[1]["outcome"], "MATCHED", "{}", mappings[1]);
    assert_eq!(mappings[1]["rule"]["pattern"], "DHL*");
    assert_eq!(mappings[1]["shippingMethod"]["code"], "DHL_PARCEL_CONNECT");
    assert_eq!(mappings[1]["conflictingRules"], json!([]));
    // PN2: matched through its description, case-insensitively.
    assert_eq!(mappings[2]["outcome"], "MATCHED", "{}", mappings[2]);
    assert_eq!(
        mappings[2]["shippingMethod"]["code"],
        "POSTNORD_MYPACK_HOME"
    );
    // UPS: nothing matches.
    assert_eq!(mappings[3]["outcome"], "NO_MATCH", "{}", mappings[3]);
    assert_eq!(
        (
            mappings[3]["rule"].clone(),
            mappings[3]["shippingMethod"].clone()
        ),
        (Value::Null, Value::Null)
    );
    assert!(
        mappings[3]["message"]
            .as_str()
            .unwrap()
            .contains("addShippingRule"),
        "{}",
        mappings[3]
    );

    // Removing one of the tied rules settles the conflict.
    let star_dhl = dhl["conflictingRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pattern"] == "*DHL")
        .unwrap()["id"]
        .clone();
    let body = app
        .graphql(&me, REMOVE_RULE, json!({ "id": star_dhl }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app.graphql(&me, MAPPINGS, json!({ "m": m })).await;
    assert_eq!(
        body["data"]["wayOfDeliveryMappings"][0]["outcome"], "MATCHED",
        "{body}"
    );
    assert_eq!(
        body["data"]["wayOfDeliveryMappings"][0]["shippingMethod"]["code"],
        "DHL_PARCEL_CONNECT"
    );

    // Partners may look; the warehouse may not; other tenants get "not found".
    let body = app
        .graphql(
            &token(Role::Partner, vec![merchant]),
            MAPPINGS,
            json!({ "m": m }),
        )
        .await;
    assert_eq!(
        body["data"]["wayOfDeliveryMappings"]
            .as_array()
            .map(Vec::len),
        Some(4),
        "{body}"
    );
    let body = app
        .graphql(&token(Role::Warehouse, vec![]), MAPPINGS, json!({ "m": m }))
        .await;
    assert_code(&body, "FORBIDDEN");
    let body = app
        .graphql(
            &token(Role::Merchant, vec![unconnected]),
            MAPPINGS,
            json!({ "m": m }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");

    // Not connected, or access revoked: an error that says what to do.
    let body = app
        .graphql(&me, MAPPINGS, json!({ "m": unconnected.to_string() }))
        .await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("FORTNOX_NOT_CONNECTED")),
        "{body}"
    );
    assert!(error_message(&body).contains("connectFortnox"), "{body}");
    sb.revoke_tokens(TENANT);
    let body = app.graphql(&me, MAPPINGS, json!({ "m": m })).await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("FORTNOX_NEEDS_REAUTHORIZATION")),
        "{body}"
    );
    assert!(error_message(&body).contains("connectFortnox"), "{body}");
    let body = app.graphql(&me, MAPPINGS, json!({ "m": m })).await;
    assert_eq!(
        (error_code(&body), error_reason(&body)),
        (Some("CONFLICT"), Some("FORTNOX_NEEDS_REAUTHORIZATION")),
        "stays so until reconnected: {body}"
    );

    app.stop().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_of_one_sku_make_one_product() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Mine").await;
    let me = token(Role::Merchant, vec![merchant]);
    let bodies =
        futures::future::join_all((0..8).map(|_| create(&app, &me, merchant, "RACE-1"))).await;
    let created = bodies.iter().filter(|b| b["errors"].is_null()).count();
    let duplicates = bodies
        .iter()
        .filter(|b| error_reason(b) == Some("DUPLICATE_SKU"))
        .count();
    assert_eq!((created, duplicates), (1, 7), "{bodies:?}");
    let body = app
        .graphql(&me, PAGE, json!({ "m": merchant.to_string() }))
        .await;
    assert_eq!(
        body["data"]["products"]["edges"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    app.stop().await;
}
