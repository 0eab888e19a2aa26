//! Who may use what: one row per query and mutation of the schema, with the roles that
//! may call it. A role outside the row is refused with FORBIDDEN; a role inside it is
//! never refused for its role (it may still get NOT_FOUND, INVALID_INPUT and so on).
//! The README's role table says the same in words. A new operation without a row fails
//! `every_operation_has_a_row`.
use std::collections::BTreeSet;

use async_graphql::parser::types::{ServiceDocument, TypeKind, TypeSystemDefinition};
use serde_json::json;

use crate::common::{create_merchant, error_code, insert_order, token, TestApp};
use fortnox_fulfilment::auth::Role;

const ALL: &[Role] = &[Role::Admin, Role::Merchant, Role::Partner, Role::Warehouse];
const ADMIN: &[Role] = &[Role::Admin];
const MERCHANT: &[Role] = &[Role::Admin, Role::Merchant];
const READERS: &[Role] = &[Role::Admin, Role::Merchant, Role::Partner];
const WAREHOUSE: &[Role] = &[Role::Admin, Role::Warehouse];
const CANCELLERS: &[Role] = &[Role::Admin, Role::Merchant, Role::Warehouse];

/// (operation, roles that may call it, a request; `$m` is a merchant and `$o` its order).
const TABLE: &[(&str, &[Role], &str)] = &[
    ("merchants", ALL, "{ merchants { id } }"),
    ("merchant", ALL, "query($m: ID!) { merchant(id: $m) { id } }"),
    ("orders", ALL, "{ orders(first: 1) { edges { node { id } } } }"),
    ("order", ALL, "query($o: ID!) { order(id: $o) { id } }"),
    ("orderEvents", ALL, "query($m: ID!) { orderEvents(merchantId: $m, first: 1) { edges { cursor } } }"),
    ("shippingMethods", ALL, "{ shippingMethods { code } }"),
    ("fortnoxIntegration", READERS, "query($m: ID!) { fortnoxIntegration(merchantId: $m) { status } }"),
    ("products", ALL, "query($m: ID!) { products(merchantId: $m) { edges { node { id } } } }"),
    ("product", ALL, "{ product(id: \"1\") { id } }"),
    ("shippingRules", READERS, "query($m: ID!) { shippingRules(merchantId: $m) { id } }"),
    ("wayOfDeliveryMappings", READERS, "query($m: ID!) { wayOfDeliveryMappings(merchantId: $m) { code } }"),
    ("productSync", READERS, "query($m: ID!) { productSync(merchantId: $m) { missingProducts } }"),
    ("createMerchant", ADMIN, "mutation { createMerchant(name: \"New\") { id } }"),
    ("forceOrderState", ADMIN, "mutation($o: ID!) { forceOrderState(orderId: $o, state: RESERVED, reason: \"test\") { id } }"),
    ("cancelOrder", CANCELLERS, "mutation($o: ID!) { cancelOrder(orderId: $o, reason: \"test\") { id } }"),
    ("revalidateOrder", MERCHANT, "mutation($o: ID!) { revalidateOrder(orderId: $o) { id } }"),
    ("confirmShipment", WAREHOUSE, "mutation($o: ID!) { confirmShipment(orderId: $o, trackingNumbers: [\"T\"], lines: []) { id } }"),
    ("retryOrder", MERCHANT, "mutation($o: ID!) { retryOrder(orderId: $o) { id } }"),
    ("connectFortnox", MERCHANT, "mutation($m: ID!) { connectFortnox(merchantId: $m) }"),
    ("completeFortnoxConnection", MERCHANT, "mutation($m: ID!) { completeFortnoxConnection(merchantId: $m, code: \"c\", state: \"s\") { status } }"),
    ("disconnectFortnox", MERCHANT, "mutation($m: ID!) { disconnectFortnox(merchantId: $m) { status } }"),
    ("updateFortnoxSettings", MERCHANT, "mutation($m: ID!) { updateFortnoxSettings(merchantId: $m, ignoreMissingProducts: false) { status } }"),
    ("syncOrders", MERCHANT, "mutation($m: ID!) { syncOrders(merchantId: $m) }"),
    ("createProduct", MERCHANT, "mutation($m: ID!) { createProduct(merchantId: $m, sku: \"S\", name: \"N\") { id } }"),
    ("updateProduct", MERCHANT, "mutation { updateProduct(id: \"999999\", name: \"N\") { id } }"),
    ("addShippingRule", MERCHANT, "mutation($m: ID!) { addShippingRule(merchantId: $m, pattern: \"X\", shippingMethodCode: \"NONE\") { id } }"),
    ("removeShippingRule", MERCHANT, "mutation { removeShippingRule(id: \"999999\") { id } }"),
    ("createProductsFromFortnox", MERCHANT, "mutation($m: ID!) { createProductsFromFortnox(merchantId: $m, articleNumbers: []) { id } }"),
    ("reportStockLevels", WAREHOUSE, "mutation($m: ID!) { reportStockLevels(merchantId: $m, levels: []) { id } }"),
    ("webhookEndpoints", READERS, "query($m: ID!) { webhookEndpoints(merchantId: $m) { id } }"),
    ("webhookEndpoint", READERS, "{ webhookEndpoint(id: \"999999\") { id } }"),
    ("createWebhookEndpoint", READERS, "mutation($m: ID!) { createWebhookEndpoint(merchantId: $m, url: \"https://93.184.216.34/hook\") { secret } }"),
    ("updateWebhookEndpoint", READERS, "mutation { updateWebhookEndpoint(id: \"999999\", enabled: false) { id } }"),
    ("deleteWebhookEndpoint", READERS, "mutation { deleteWebhookEndpoint(id: \"999999\") }"),
    ("rotateWebhookSecret", READERS, "mutation { rotateWebhookSecret(id: \"999999\") { secret } }"),
    ("resendWebhookDelivery", READERS, "mutation { resendWebhookDelivery(id: \"999999\") { id } }"),
    ("resendFailedWebhookDeliveries", READERS, "mutation { resendFailedWebhookDeliveries(endpointId: \"999999\") }"),
];

/// The fields of the schema's query and mutation roots.
fn schema_operations() -> BTreeSet<String> {
    let document: ServiceDocument =
        async_graphql::parser::parse_schema(fortnox_fulfilment::graphql::sdl())
            .expect("the SDL parses");
    let mut operations = BTreeSet::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let name = ty.node.name.node.as_str();
        if name != "QueryRoot" && name != "MutationRoot" {
            continue;
        }
        if let TypeKind::Object(object) = &ty.node.kind {
            operations.extend(object.fields.iter().map(|f| f.node.name.node.to_string()));
        }
    }
    operations
}

#[test]
fn every_operation_has_a_row() {
    let in_table: BTreeSet<String> = TABLE.iter().map(|(name, _, _)| name.to_string()).collect();
    let in_schema = schema_operations();
    let missing: Vec<_> = in_schema.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_schema).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "add a row to tests/api/roles.rs (and to the README's role table) for {missing:?}; remove {stale:?}"
    );
}

#[tokio::test]
async fn each_role_may_use_exactly_its_operations() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Roles").await;
    let vars = json!({ "m": merchant.to_string() });
    let mut wrong = Vec::new();
    for role in ALL {
        let merchants = match role {
            Role::Merchant | Role::Partner => vec![merchant],
            _ => vec![],
        };
        let token = token(*role, merchants);
        for (operation, allowed, query) in TABLE {
            // A fresh order each time, since some operations change it.
            let order = insert_order(
                app.store(),
                merchant,
                &format!("{operation}-{}", role.as_str()),
            )
            .await;
            let mut vars = vars.clone();
            vars["o"] = json!(order.to_string());
            let body = app.graphql(&token, query, vars).await;
            let code = error_code(&body).map(str::to_owned);
            let forbidden = code.as_deref() == Some("FORBIDDEN");
            // A request the schema refuses says nothing about roles: the row must be fixed.
            let malformed = body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Unknown") || m.contains("is required"));
            if allowed.contains(role) == forbidden
                || malformed
                || code.as_deref() == Some("UNAUTHENTICATED")
            {
                wrong.push(format!("{} {operation}: {body}", role.as_str()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "roles and operations disagree:\n{}",
        wrong.join("\n")
    );
    app.stop().await;
}
