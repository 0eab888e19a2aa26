//! Fortnox integration rows: the OAuth `state` of a pending connection and who started it,
//! the connected Fortnox company, the merchant's settings, and the import cursor. Tokens
//! are handled by `fortnox_tokens`.
use chrono::{DateTime, Utc};
use entity::fortnox_integration as integration;
use sea_orm::prelude::*;
use sea_orm::ActiveValue::Set;
use sea_orm::{Condition, SqlErr};

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

/// A connection started with `connectFortnox` and not completed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingConnection {
    pub merchant_id: i64,
    /// The actor (`role:subject`) who started it; only they may complete it.
    pub started_by: Option<String>,
}

/// The Fortnox company behind a connection, from Fortnox's company information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FortnoxCompany {
    /// Fortnox's DatabaseNumber: one per Fortnox database (company account).
    pub tenant_id: String,
    pub name: String,
    pub organization_number: Option<String>,
}

impl FortnoxCompany {
    /// The company as a person recognises it: "Name (556677-8899)".
    pub fn describe(&self) -> String {
        match &self.organization_number {
            Some(number) => format!("{} ({number})", self.name),
            None => format!("{} (Fortnox database {})", self.name, self.tenant_id),
        }
    }
}

/// Whether a merchant may take a Fortnox company as its source of orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompanyClaim {
    Claimed,
    /// Another merchant is connected to this company.
    TakenByAnotherMerchant,
    /// The merchant is connected (or waiting to reconnect) to this other company.
    ConnectedToAnotherCompany(FortnoxCompany),
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

    /// Remembers the single-use OAuth `state` of a connection the merchant started, and
    /// who started it.
    pub async fn begin_oauth(
        &self,
        merchant_id: i64,
        state: &str,
        expires_at: DateTime<Utc>,
        started_by: &str,
    ) -> Result<(), StoreError> {
        let row = self.ensure_integration(merchant_id).await?;
        let mut active: integration::ActiveModel = row.into();
        active.oauth_state = Set(Some(state.to_owned()));
        active.oauth_state_expires_at = Set(Some(expires_at));
        active.oauth_started_by = Set(Some(started_by.to_owned()));
        active.updated_at = Set(Utc::now());
        active.update(&self.db).await?;
        Ok(())
    }

    /// Consumes an OAuth `state`: returns its connection once, if it has not expired.
    pub async fn take_oauth_state(
        &self,
        state: &str,
    ) -> Result<Option<PendingConnection>, StoreError> {
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
            .col_expr(
                integration::Column::OauthStartedBy,
                Expr::value(Option::<String>::None),
            )
            .filter(integration::Column::Id.eq(row.id))
            .filter(integration::Column::OauthState.eq(state))
            .exec(&self.db)
            .await?;
        let fresh = row
            .oauth_state_expires_at
            .is_some_and(|expires| expires > Utc::now());
        Ok(
            (cleared.rows_affected == 1 && fresh).then_some(PendingConnection {
                merchant_id: row.merchant_id,
                started_by: row.oauth_started_by,
            }),
        )
    }

    /// Records `company` as the merchant's source of orders, unless another merchant is
    /// connected to it (the unique index decides, so two merchants racing for one company
    /// cannot both win) or the merchant is connected to another company (it must
    /// disconnect first: a silent switch would mix two companies' orders).
    pub async fn claim_fortnox_company(
        &self,
        merchant_id: i64,
        company: &FortnoxCompany,
    ) -> Result<CompanyClaim, StoreError> {
        self.ensure_integration(merchant_id).await?;
        let claimed = integration::Entity::update_many()
            .col_expr(
                integration::Column::FortnoxTenantId,
                Expr::value(Some(company.tenant_id.clone())),
            )
            .col_expr(
                integration::Column::FortnoxCompanyName,
                Expr::value(Some(company.name.clone())),
            )
            .col_expr(
                integration::Column::FortnoxOrganizationNumber,
                Expr::value(company.organization_number.clone()),
            )
            .filter(integration::Column::MerchantId.eq(merchant_id))
            .filter(
                Condition::any()
                    .add(integration::Column::FortnoxTenantId.is_null())
                    .add(integration::Column::FortnoxTenantId.eq(company.tenant_id.as_str()))
                    .add(integration::Column::Status.is_not_in([
                        IntegrationStatus::Connected,
                        IntegrationStatus::NeedsReauthorization,
                    ])),
            )
            .exec(&self.db)
            .await;
        match claimed {
            Ok(result) if result.rows_affected == 1 => Ok(CompanyClaim::Claimed),
            Ok(_) => {
                let row = self.ensure_integration(merchant_id).await?;
                Ok(CompanyClaim::ConnectedToAnotherCompany(FortnoxCompany {
                    tenant_id: row.fortnox_tenant_id.unwrap_or_default(),
                    name: row.fortnox_company_name.unwrap_or_default(),
                    organization_number: row.fortnox_organization_number,
                }))
            }
            Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(CompanyClaim::TakenByAnotherMerchant)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Undoes a claim whose connection could not be completed, unless the merchant is
    /// connected (to that company, by an earlier connection).
    pub async fn release_fortnox_company(&self, merchant_id: i64) -> Result<(), StoreError> {
        integration::Entity::update_many()
            .col_expr(
                integration::Column::FortnoxTenantId,
                Expr::value(Option::<String>::None),
            )
            .filter(integration::Column::MerchantId.eq(merchant_id))
            .filter(integration::Column::Status.is_not_in([
                IntegrationStatus::Connected,
                IntegrationStatus::NeedsReauthorization,
            ]))
            .exec(&self.db)
            .await?;
        Ok(())
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
        let txn = self.begin_write().await?;
        let row = active.update(&txn).await?;
        if update.ignore_missing_products.is_some() {
            // Whether missing products are ignored is part of what the checks read.
            super::catalog::bump_catalog_version(&txn, merchant_id).await?;
        }
        txn.commit().await?;
        Ok(row)
    }

    /// Forgets the tokens; orders already imported stay.
    pub async fn disconnect(&self, merchant_id: i64) -> Result<integration::Model, StoreError> {
        let row = self.ensure_integration(merchant_id).await?;
        let mut active: integration::ActiveModel = row.into();
        active.status = Set(IntegrationStatus::Disconnected);
        active.access_token_encrypted = Set(None);
        active.refresh_token_encrypted = Set(None);
        active.access_token_expires_at = Set(None);
        // The company is free for another merchant, and this one may connect another.
        active.fortnox_tenant_id = Set(None);
        active.fortnox_company_name = Set(None);
        active.fortnox_organization_number = Set(None);
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
