//! Checks any [`TokenStore`] must pass, so the database-backed store (SQLite
//! and PostgreSQL) runs the same contract as the in-memory one; and the
//! articles tests and benchmarks put in the sandbox.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use fortnox::oauth::{TokenSet, TokenState, TokenStore};
use fortnox::types::{Article, Quantity};

/// An active article priced 100: a stock article with `in_stock` on hand, or
/// (`stock` false) a service article such as freight.
pub fn article(number: &str, stock: bool, in_stock: i64) -> Article {
    Article {
        url: None,
        article_number: number.into(),
        description: Some(format!("Article {number}")),
        ean: None,
        article_type: Some(if stock { "STOCK" } else { "SERVICE" }.into()),
        stock_goods: Some(stock),
        active: Some(true),
        unit: Some("st".into()),
        weight: None,
        width: None,
        height: None,
        depth: None,
        sales_price: Some(Quantity::from_i64(100)),
        purchase_price: None,
        quantity_in_stock: Some(Quantity::from_i64(in_stock)),
        reserved_quantity: None,
        disposable_quantity: None,
        stock_place: None,
        default_stock_point: None,
        default_stock_location: None,
    }
}

fn tokens(tag: &str) -> TokenSet {
    TokenSet {
        access_token: format!("access-{tag}"),
        refresh_token: format!("refresh-{tag}"),
        access_expires_at: Utc::now() + chrono::Duration::hours(1),
        scope: Some("article invoice order settings".into()),
    }
}

/// Panics (with a message) on the first broken rule. `merchant` must be a
/// merchant the store can hold tokens for and that has none yet.
pub async fn check_token_store(store: Arc<dyn TokenStore>, merchant: &str) {
    let state = store.load(merchant).await.expect("load");
    assert_eq!(state, TokenState::Missing, "a new merchant has no tokens");

    let first = tokens("1");
    store.save(merchant, &first).await.expect("save");
    let loaded = store.load(merchant).await.expect("load");
    assert!(
        matches!(&loaded, TokenState::Active(t) if t.access_token == first.access_token
        && t.refresh_token == first.refresh_token),
        "save then load returns the tokens"
    );

    // A dropped lease changes nothing and releases the lock.
    drop(store.begin_refresh(merchant).await.expect("lease"));

    // The lease is exclusive: a second refresher waits, then reads the tokens
    // the first one rotated (not the spent refresh token).
    let lease = store.begin_refresh(merchant).await.expect("lease A");
    assert!(
        matches!(lease.tokens(), TokenState::Active(t) if t.refresh_token == first.refresh_token)
    );
    let s2 = store.clone();
    let m2 = merchant.to_string();
    let waiter = tokio::spawn(async move {
        let lease = s2.begin_refresh(&m2).await.expect("lease B");
        lease.tokens().clone()
    });
    // Give B every chance to run; it must still be waiting for A.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokens("2");
    lease.save_rotated(&second).await.expect("save rotated");
    let seen_by_b = waiter.await.expect("join");
    assert!(
        matches!(&seen_by_b, TokenState::Active(t) if t.refresh_token == second.refresh_token),
        "the second refresher must see the rotated tokens, so it does not spend a used refresh token"
    );

    let lease = store.begin_refresh(merchant).await.expect("lease C");
    lease
        .mark_needs_reauthorization("invalid_grant: Invalid refresh token")
        .await
        .expect("mark");
    assert!(
        matches!(
            store.load(merchant).await.expect("load"),
            TokenState::NeedsReauthorization { .. }
        ),
        "invalid_grant marks the merchant"
    );

    // Reconnecting (a new code exchange) restores it.
    store
        .save(merchant, &tokens("3"))
        .await
        .expect("save again");
    assert!(matches!(
        store.load(merchant).await.expect("load"),
        TokenState::Active(_)
    ));
}
