//! Fortnox integration rows: the OAuth `state` of a pending connection, the merchant's
//! settings, and the import cursor. Tokens are handled by `fortnox_tokens`.
use chrono::{DateTime, Utc};
use entity::fortnox_integration as integration;
use sea_orm::prelude::*;
use sea_orm::ActiveValue::Set;

use super::{Store, StoreError};
use entity::IntegrationStatus;

/// Settings a merchant may change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct SettingsUpdate {
    /// `Some(None)` clears the date.
    pub first_order_date: Option<Option<chrono::NaiveDate>>,
    pub ignore_missing_products: Option<bool>,
    pub credit_duplicate_invoices: Option<bool>,
    /// `Some(None)` or an empty string: every stock article.
    pub stock_location: Option<Option<String>>,
}

impl Store {
    pub async fn integration(
        &self,
        merchant_id: i64,
    ) -> Result<Option<integration::Model>, StoreError> {
        Ok(integration::Entity::find()
            .filter(integration::Column::MerchantId.eq(merchant_id))
            .one(&self.db)
            .await?)
    }

    /// The integration row of a merchant, created (not connected) when missing.
    pub async fn ensure_integration(
        &self,
        merchant_id: i64,
    ) -> Result<integration::Model, StoreError> {
        let now = Utc::now();
        let row = integration::ActiveModel {
            merchant_id: Set(merchant_id),
            status: Set(IntegrationStatus::NotConnected),
            ignore_missing_products: Set(false),
            credit_duplicate_invoices: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        integration::Entity::insert(row)
            .on_conflict_do_nothing_on([integration::Column::MerchantId])
            .exec(&self.db)
            .await?;
        self.integration(merchant_id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("integration of merchant {merchant_id} vanished"))
        })
    }

    /// Remembers the single-use OAuth `state` of a connection the merchant started.
    pub async fn begin_oauth(
        &self,
        merchant_id: i64,
        state: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = self.ensure_integration(merchant_id).await?;
        let mut active: integration::ActiveModel = row.into();
        active.oauth_state = Set(Some(state.to_owned()));
        active.oauth_state_expires_at = Set(Some(expires_at));
        active.updated_at = Set(Utc::now());
        active.update(&self.db).await?;
        Ok(())
    }

    /// Consumes an OAuth `state`: returns its merchant once, if it has not expired.
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<i64>, StoreError> {
        let Some(row) = integration::Entity::find()
            .filter(integration::Column::OauthState.eq(state))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        // Conditioned on the state itself, so two callbacks with one state cannot both win.
        let cleared = integration::Entity::update_many()
            .col_expr(
                integration::Column::OauthState,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                integration::Column::OauthStateExpiresAt,
                Expr::value(Option::<DateTimeUtc>::None),
            )
            .filter(integration::Column::Id.eq(row.id))
            .filter(integration::Column::OauthState.eq(state))
            .exec(&self.db)
            .await?;
        let fresh = row
            .oauth_state_expires_at
            .is_some_and(|expires| expires > Utc::now());
        Ok((cleared.rows_affected == 1 && fresh).then_some(row.merchant_id))
    }

    pub async fn update_settings(
        &self,
        merchant_id: i64,
        update: SettingsUpdate,
    ) -> Result<integration::Model, StoreError> {
        let row = self.ensure_integration(merchant_id).await?;
        let mut active: integration::ActiveModel = row.into();
        if let Some(date) = update.first_order_date {
            active.first_order_date = Set(date.map(|d| d.format("%Y-%m-%d").to_string()));
        }
        if let Some(ignore) = update.ignore_missing_products {
            active.ignore_missing_products = Set(ignore);
        }
        if let Some(credit) = update.credit_duplicate_invoices {
            active.credit_duplicate_invoices = Set(credit);
        }
        if let Some(location) = update.stock_location {
            active.stock_location = Set(location
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty()));
        }
        active.updated_at = Set(Utc::now());
        Ok(active.update(&self.db).await?)
    }

    /// Forgets the tokens; orders already imported stay.
    pub async fn disconnect(&self, merchant_id: i64) -> Result<integration::Model, StoreError> {
        let row = self.ensure_integration(merchant_id).await?;
        let mut active: integration::ActiveModel = row.into();
        active.status = Set(IntegrationStatus::Disconnected);
        active.access_token_encrypted = Set(None);
        active.refresh_token_encrypted = Set(None);
        active.access_token_expires_at = Set(None);
        active.updated_at = Set(Utc::now());
        Ok(active.update(&self.db).await?)
    }

    pub async fn connected_merchants(&self) -> Result<Vec<i64>, StoreError> {
        let rows = integration::Entity::find()
            .filter(integration::Column::Status.eq(IntegrationStatus::Connected))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|r| r.merchant_id).collect())
    }

    /// The import's cursor, and its last error (`None` when every order imported).
    pub async fn set_orders_synced_until(
        &self,
        merchant_id: i64,
        until: DateTime<Utc>,
        last_error: Option<String>,
    ) -> Result<(), StoreError> {
        integration::Entity::update_many()
            .col_expr(
                integration::Column::OrdersSyncedUntil,
                Expr::value(Some(until)),
            )
            .col_expr(integration::Column::LastError, Expr::value(last_error))
            .filter(integration::Column::MerchantId.eq(merchant_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn set_integration_error(
        &self,
        merchant_id: i64,
        message: &str,
    ) -> Result<(), StoreError> {
        integration::Entity::update_many()
            .col_expr(
                integration::Column::LastError,
                Expr::value(Some(message.to_owned())),
            )
            .filter(integration::Column::MerchantId.eq(merchant_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
