//! The database-backed Fortnox token store on SQLite and PostgreSQL: the TokenStore
//! contract, encryption at rest, one refresh across several client instances (standing in
//! for several processes), and `invalid_grant` marking the integration.
use crate::fortnox_common;

use std::sync::Arc;

use crate::common::{create_merchant, TestDb};
use fortnox_fulfilment::fortnox::crypto::TokenCipher;
use fortnox_fulfilment::fortnox::types::DocumentNumber;
use fortnox_fulfilment::fortnox::{ErrorClass, FortnoxClient, TokenSet, TokenStore};
use fortnox_fulfilment::store::fortnox_tokens::DbTokenStore;
use fortnox_fulfilment::store::{Pool, Store};
use fortnox_sandbox::{testkit, Sandbox, SandboxConfig};

const KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

async fn setup() -> (TestDb, Store, Arc<DbTokenStore>, i64) {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let merchant = create_merchant(&store, "M").await;
    let tokens = Arc::new(DbTokenStore::new(
        store.pool.clone(),
        TokenCipher::from_key_text(KEY).expect("key"),
    ));
    (db, store, tokens, merchant)
}

#[tokio::test]
async fn the_database_store_passes_the_token_store_contract() {
    let (db, store, tokens, merchant) = setup().await;
    testkit::check_token_store(tokens, &merchant.to_string()).await;
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn tokens_are_encrypted_at_rest() {
    let (db, store, tokens, merchant) = setup().await;
    let secret = TokenSet {
        access_token: "plain-access-token-ABC123".into(),
        refresh_token: "plain-refresh-token-XYZ789".into(),
        access_expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        scope: None,
    };
    tokens
        .save(&merchant.to_string(), &secret)
        .await
        .expect("save");
    let columns: (Option<String>, Option<String>) =
        match &store.pool {
            Pool::Sqlite(pool) => sqlx::query_as(
                "SELECT access_token_encrypted, refresh_token_encrypted FROM fortnox_integrations",
            )
            .fetch_one(pool)
            .await,
            Pool::Postgres(pool) => sqlx::query_as(
                "SELECT access_token_encrypted, refresh_token_encrypted FROM fortnox_integrations",
            )
            .fetch_one(pool)
            .await,
        }
        .expect("read raw columns");
    for stored in [columns.0.expect("access"), columns.1.expect("refresh")] {
        assert!(!stored.contains("plain-"), "stored in clear: {stored}");
    }
    if let Pool::Sqlite(pool) = &store.pool {
        // The whole file, as a dump would see it.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .expect("checkpoint");
        let path = db.url.trim_start_matches("sqlite://");
        let bytes = std::fs::read(path).expect("database file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("plain-access-token") && !text.contains("plain-refresh-token"));
    }
    let other_key = DbTokenStore::new(
        store.pool.clone(),
        TokenCipher::from_key_text(&KEY.replace('1', "2")).unwrap(),
    );
    let error = other_key
        .load(&merchant.to_string())
        .await
        .expect_err("a wrong key cannot read the tokens");
    assert!(
        error.to_string().contains("TOKEN_ENCRYPTION_KEY"),
        "{error}"
    );
    store.close().await;
    db.cleanup().await;
}

async fn connected_clients(
    tokens: Arc<DbTokenStore>,
    merchant: i64,
    instances: usize,
) -> (Sandbox, Vec<FortnoxClient>) {
    let sandbox = Sandbox::start(SandboxConfig {
        rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let sb = sandbox.handle();
    sb.create_tenant(fortnox_common::TENANT, None);
    sb.create_order(fortnox_common::TENANT, fortnox_common::order_json("1"))
        .expect("order");
    let issued = sb.issue_tokens(fortnox_common::TENANT);
    tokens
        .save(
            &merchant.to_string(),
            &TokenSet::from_response(issued, chrono::Utc::now()),
        )
        .await
        .expect("save");
    let clients = (0..instances)
        .map(|_| {
            FortnoxClient::new(fortnox_common::client_config(&sandbox), tokens.clone())
                .expect("client")
        })
        .collect();
    (sandbox, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_calls_from_two_instances_with_an_expired_token_make_one_refresh() {
    let (db, store, tokens, merchant) = setup().await;
    let (sandbox, clients) = connected_clients(tokens.clone(), merchant, 2).await;
    sandbox
        .handle()
        .expire_access_tokens(Some(fortnox_common::TENANT));
    let mut calls = Vec::new();
    for n in 0..20 {
        let tenant = clients[n % 2].tenant(merchant.to_string());
        calls.push(tokio::spawn(async move {
            tenant
                .get_order(&DocumentNumber::parse("1").expect("doc"))
                .await
        }));
    }
    for call in calls {
        call.await.expect("join").expect("every call succeeds");
    }
    let counters = sandbox.handle().counters();
    assert_eq!(
        counters.token_requests_total(),
        1,
        "{:?}",
        counters.token_requests
    );
    assert_eq!(counters.token_requests.get("refresh_token ok"), Some(&1));
    store.close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_marks_the_integration_for_reauthorization() {
    let (db, store, tokens, merchant) = setup().await;
    let (sandbox, clients) = connected_clients(tokens.clone(), merchant, 1).await;
    sandbox.handle().revoke_tokens(fortnox_common::TENANT);
    for _ in 0..5 {
        let error = clients[0]
            .tenant(merchant.to_string())
            .get_order(&DocumentNumber::parse("1").unwrap())
            .await
            .expect_err("revoked");
        assert_eq!(error.class(), ErrorClass::NeedsReauthorization, "{error:?}");
    }
    assert_eq!(
        sandbox.handle().counters().token_requests_total(),
        1,
        "no retry storm"
    );
    let status: String = match &store.pool {
        Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT status FROM fortnox_integrations")
                .fetch_one(pool)
                .await
        }
        Pool::Postgres(pool) => {
            sqlx::query_scalar("SELECT status FROM fortnox_integrations")
                .fetch_one(pool)
                .await
        }
    }
    .expect("status");
    assert_eq!(status, "NEEDS_REAUTHORIZATION");
    store.close().await;
    db.cleanup().await;
}
