//! A [`TokenStore`] in memory, for tests and the demo: it lives beside the
//! sandbox so that the production build carries no store without persistence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fortnox::keyed_locks::{KeyedGuard, KeyedLocks};
use fortnox::oauth::{RefreshLease, StoreError, TokenSet, TokenState, TokenStore};

/// A [`TokenStore`] in memory, for tests and the demo. Its lease holds a
/// per-merchant async mutex, standing in for the database row lock.
#[derive(Default)]
pub struct InMemoryTokenStore {
    tokens: Arc<Mutex<HashMap<String, TokenState>>>,
    locks: KeyedLocks<String>,
}

type SharedTokens = Arc<Mutex<HashMap<String, TokenState>>>;

fn read(tokens: &SharedTokens, merchant: &str) -> TokenState {
    tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(merchant)
        .cloned()
        .unwrap_or(TokenState::Missing)
}

fn write(tokens: &SharedTokens, merchant: &str, state: TokenState) {
    tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(merchant.to_string(), state);
}

impl InMemoryTokenStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn state(&self, merchant: &str) -> TokenState {
        read(&self.tokens, merchant)
    }

    pub fn put(&self, merchant: &str, state: TokenState) {
        write(&self.tokens, merchant, state)
    }
}

#[async_trait]
impl TokenStore for InMemoryTokenStore {
    async fn load(&self, merchant: &str) -> std::result::Result<TokenState, StoreError> {
        Ok(self.state(merchant))
    }

    async fn save(&self, merchant: &str, tokens: &TokenSet) -> std::result::Result<(), StoreError> {
        self.put(merchant, TokenState::Active(tokens.clone()));
        Ok(())
    }

    async fn begin_refresh(
        &self,
        merchant: &str,
    ) -> std::result::Result<Box<dyn RefreshLease>, StoreError> {
        let guard = self.locks.lock(merchant.to_string()).await;
        let tokens = self.state(merchant);
        Ok(Box::new(MemLease {
            store: self.tokens.clone(),
            merchant: merchant.into(),
            tokens,
            _guard: guard,
        }))
    }
}

struct MemLease {
    store: SharedTokens,
    merchant: String,
    tokens: TokenState,
    _guard: KeyedGuard<String>,
}

#[async_trait]
impl RefreshLease for MemLease {
    fn tokens(&self) -> &TokenState {
        &self.tokens
    }

    async fn save_rotated(
        self: Box<Self>,
        tokens: &TokenSet,
    ) -> std::result::Result<(), StoreError> {
        write(
            &self.store,
            &self.merchant,
            TokenState::Active(tokens.clone()),
        );
        Ok(())
    }

    async fn mark_needs_reauthorization(
        self: Box<Self>,
        reason: &str,
    ) -> std::result::Result<(), StoreError> {
        write(
            &self.store,
            &self.merchant,
            TokenState::NeedsReauthorization {
                reason: reason.into(),
            },
        );
        Ok(())
    }
}
