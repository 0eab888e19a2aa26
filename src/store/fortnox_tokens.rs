//! The Fortnox tokens of each merchant, encrypted at rest, in `fortnox_integrations`.
//!
//! Refresh tokens are single-use, so one refresh per merchant runs at a time: on
//! PostgreSQL a transaction holding the merchant's advisory lock (any number of
//! processes). Not a row lock: `SELECT ... FOR UPDATE` would give the transaction an id
//! for the whole HTTP call to Fortnox, and the order event log hands out no event newer
//! than the oldest running transaction (`store::event_log`). SQLite serves one process,
//! and its only lock is database-wide, which must not be held across an HTTP call: there a
//! per-merchant lock in the process does it. Since neither lock keeps other writers off
//! the row, the rotated tokens are saved only if the row still holds the refresh token
//! that was read (a disconnect or a new connection meanwhile wins). The rotated tokens are
//! committed before the new access token is handed out.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::IntegrationStatus;
use sea_orm::ActiveEnum;
use sqlx::{Postgres, Transaction};

use super::{numbered_placeholders, Pool};
use crate::fortnox::crypto::TokenCipher;
use crate::fortnox::keyed_locks::{KeyedGuard, KeyedLocks};
use crate::fortnox::oauth::{RefreshLease, StoreError, TokenSet, TokenState, TokenStore};

#[derive(Clone)]
pub struct DbTokenStore {
    pool: Pool,
    cipher: TokenCipher,
    /// SQLite only: the per-merchant refresh locks.
    local_locks: KeyedLocks<i64>,
}

impl DbTokenStore {
    pub fn new(pool: Pool, cipher: TokenCipher) -> DbTokenStore {
        DbTokenStore {
            pool,
            cipher,
            local_locks: Default::default(),
        }
    }

    fn decode(&self, row: Option<TokenRow>) -> Result<TokenState, StoreError> {
        let Some(row) = row else {
            return Ok(TokenState::Missing);
        };
        // A status this program does not know reads as "not connected", like no row.
        match IntegrationStatus::try_from_value(&row.status).ok() {
            Some(IntegrationStatus::NeedsReauthorization) => Ok(TokenState::NeedsReauthorization {
                reason: row
                    .last_error
                    .unwrap_or_else(|| "Fortnox refused the refresh token".into()),
            }),
            Some(IntegrationStatus::Connected) => match (row.access, row.refresh, row.expires_at) {
                (Some(access), Some(refresh), Some(expires_at)) => {
                    Ok(TokenState::Active(TokenSet {
                        access_token: self.decrypt(&access)?,
                        refresh_token: self.decrypt(&refresh)?,
                        access_expires_at: expires_at,
                        scope: row.scope,
                    }))
                }
                _ => Ok(TokenState::Missing),
            },
            _ => Ok(TokenState::Missing),
        }
    }

    fn decrypt(&self, stored: &str) -> Result<String, StoreError> {
        self.cipher.decrypt(stored).map_err(|e| {
            StoreError(format!(
                "cannot decrypt the stored Fortnox token ({e}): was TOKEN_ENCRYPTION_KEY changed? Reconnect Fortnox to store new tokens"
            ))
        })
    }
}

type TokenRow = Row;

#[derive(sqlx::FromRow)]
struct Row {
    status: String,
    access: Option<String>,
    refresh: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scope: Option<String>,
    last_error: Option<String>,
}

fn merchant_id(merchant: &str) -> Result<i64, StoreError> {
    merchant
        .parse()
        .map_err(|_| StoreError(format!("merchant id `{merchant}` is not a number")))
}

fn db_error(e: sqlx::Error) -> StoreError {
    StoreError(format!("database error while handling Fortnox tokens: {e}"))
}

const SELECT: &str = "SELECT status, access_token_encrypted AS access, refresh_token_encrypted AS refresh, \
    access_token_expires_at AS expires_at, token_scope AS scope, last_error FROM fortnox_integrations WHERE merchant_id = ?";
const UPSERT: &str = "INSERT INTO fortnox_integrations (merchant_id, status, access_token_encrypted, refresh_token_encrypted, \
    access_token_expires_at, token_scope, ignore_missing_products, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (merchant_id) DO UPDATE SET status = excluded.status, access_token_encrypted = excluded.access_token_encrypted, \
    refresh_token_encrypted = excluded.refresh_token_encrypted, access_token_expires_at = excluded.access_token_expires_at, \
    token_scope = excluded.token_scope, last_error = NULL, updated_at = excluded.updated_at";
const ROTATE: &str = "UPDATE fortnox_integrations SET status = ?, access_token_encrypted = ?, refresh_token_encrypted = ?, \
    access_token_expires_at = ?, token_scope = ?, last_error = NULL, updated_at = ? \
    WHERE merchant_id = ? AND refresh_token_encrypted = ?";
const NEEDS_REAUTH: &str =
    "UPDATE fortnox_integrations SET status = ?, access_token_encrypted = NULL, \
    refresh_token_encrypted = NULL, access_token_expires_at = NULL, last_error = ?, updated_at = ? \
    WHERE merchant_id = ? AND refresh_token_encrypted = ?";
/// PostgreSQL: one refresh per merchant across processes, held until the transaction ends.
const REFRESH_LOCK: &str = "SELECT pg_advisory_xact_lock(?)";
/// The advisory-lock keys of token refreshes: the merchant id in a space of their own.
const REFRESH_LOCK_SPACE: i64 = 0x466f_7274_0000_0000;

fn sql(pool_is_pg: bool, text: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(if pool_is_pg {
        numbered_placeholders(text)
    } else {
        text.to_owned()
    })
}

#[async_trait]
impl TokenStore for DbTokenStore {
    async fn load(&self, merchant: &str) -> Result<TokenState, StoreError> {
        let id = merchant_id(merchant)?;
        let row: Option<Row> = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql(false, SELECT))
                    .bind(id)
                    .fetch_optional(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(sql(true, SELECT))
                    .bind(id)
                    .fetch_optional(pool)
                    .await
            }
        }
        .map_err(db_error)?;
        self.decode(row)
    }

    async fn save(&self, merchant: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        let id = merchant_id(merchant)?;
        let now = Utc::now();
        let (access, refresh) = (
            self.cipher.encrypt(&tokens.access_token),
            self.cipher.encrypt(&tokens.refresh_token),
        );
        macro_rules! upsert {
            ($pool:expr, $pg:expr) => {
                sqlx::query(sql($pg, UPSERT))
                    .bind(id)
                    .bind(IntegrationStatus::Connected.as_str())
                    .bind(&access)
                    .bind(&refresh)
                    .bind(tokens.access_expires_at)
                    .bind(tokens.scope.as_deref())
                    .bind(false)
                    .bind(now)
                    .bind(now)
                    .execute($pool)
                    .await
                    .map(|_| ())
            };
        }
        match &self.pool {
            Pool::Sqlite(pool) => upsert!(pool, false),
            Pool::Postgres(pool) => upsert!(pool, true),
        }
        .map_err(db_error)?;
        Ok(())
    }

    async fn begin_refresh(&self, merchant: &str) -> Result<Box<dyn RefreshLease>, StoreError> {
        let id = merchant_id(merchant)?;
        let (tx, row) = match &self.pool {
            Pool::Sqlite(pool) => {
                let guard = self.local_locks.lock(id).await;
                let row: Option<Row> = sqlx::query_as(sql(false, SELECT))
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(db_error)?;
                (
                    LeaseTx::Sqlite {
                        pool: pool.clone(),
                        _guard: guard,
                    },
                    row,
                )
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                sqlx::query(sql(true, REFRESH_LOCK))
                    .bind(REFRESH_LOCK_SPACE | id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let row: Option<Row> = sqlx::query_as(sql(true, SELECT))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                (LeaseTx::Postgres(tx), row)
            }
        };
        let read_refresh = row.as_ref().and_then(|r| r.refresh.clone());
        let tokens = self.decode(row)?;
        Ok(Box::new(DbLease {
            tx,
            merchant_id: id,
            tokens,
            read_refresh,
            cipher: self.cipher.clone(),
        }))
    }
}

enum LeaseTx {
    Sqlite {
        pool: sqlx::SqlitePool,
        _guard: KeyedGuard<i64>,
    },
    Postgres(Transaction<'static, Postgres>),
}

/// Holds the merchant's refresh lock until it is saved, marked, or dropped (which rolls
/// back).
struct DbLease {
    tx: LeaseTx,
    merchant_id: i64,
    tokens: TokenState,
    /// The refresh token as stored when the lease began (encrypted): a write applies only
    /// while the row still holds it.
    read_refresh: Option<String>,
    cipher: TokenCipher,
}

#[async_trait]
impl RefreshLease for DbLease {
    fn tokens(&self) -> &TokenState {
        &self.tokens
    }

    async fn save_rotated(self: Box<Self>, tokens: &TokenSet) -> Result<(), StoreError> {
        let (access, refresh) = (
            self.cipher.encrypt(&tokens.access_token),
            self.cipher.encrypt(&tokens.refresh_token),
        );
        let now = Utc::now();
        macro_rules! rotate {
            ($tx:expr, $pg:expr) => {{
                let mut tx = $tx;
                let updated = sqlx::query(sql($pg, ROTATE))
                    .bind(IntegrationStatus::Connected.as_str())
                    .bind(&access)
                    .bind(&refresh)
                    .bind(tokens.access_expires_at)
                    .bind(tokens.scope.as_deref())
                    .bind(now)
                    .bind(self.merchant_id)
                    .bind(self.read_refresh.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected();
                tx.commit().await.map(|()| updated)
            }};
        }
        let updated = match self.tx {
            LeaseTx::Sqlite { pool, _guard } => {
                rotate!(pool.begin().await.map_err(db_error)?, false)
            }
            LeaseTx::Postgres(tx) => rotate!(tx, true),
        }
        .map_err(db_error)?;
        if updated != 1 {
            return Err(StoreError(
                "the Fortnox connection changed while its tokens were refreshed (it was disconnected or connected again): try again".into(),
            ));
        }
        Ok(())
    }

    async fn mark_needs_reauthorization(self: Box<Self>, reason: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        macro_rules! mark {
            ($tx:expr, $pg:expr) => {{
                let mut tx = $tx;
                sqlx::query(sql($pg, NEEDS_REAUTH))
                    .bind(IntegrationStatus::NeedsReauthorization.as_str())
                    .bind(reason)
                    .bind(now)
                    .bind(self.merchant_id)
                    .bind(self.read_refresh.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await
            }};
        }
        match self.tx {
            LeaseTx::Sqlite { pool, _guard } => mark!(pool.begin().await.map_err(db_error)?, false),
            LeaseTx::Postgres(tx) => mark!(tx, true),
        }
        .map_err(db_error)?;
        tracing::warn!(merchant_id = self.merchant_id, %reason, "Fortnox integration needs reauthorization; its jobs pause until the merchant reconnects");
        Ok(())
    }
}
