use sea_orm::entity::prelude::*;

/// One Fortnox connection per merchant. Tokens are stored encrypted (AEAD) and never in clear.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "fortnox_integrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub merchant_id: i64,
    pub status: crate::IntegrationStatus,
    pub access_token_encrypted: Option<String>,
    pub refresh_token_encrypted: Option<String>,
    pub access_token_expires_at: Option<DateTimeUtc>,
    pub token_scope: Option<String>,
    /// Single-use OAuth `state` bound to this merchant while a connection is pending.
    pub oauth_state: Option<String>,
    pub oauth_state_expires_at: Option<DateTimeUtc>,
    /// Who started the pending connection (`role:subject`): only they may complete it.
    pub oauth_started_by: Option<String>,
    /// The connected Fortnox company (its DatabaseNumber); unique, so one company feeds
    /// one merchant. Cleared on disconnect.
    pub fortnox_tenant_id: Option<String>,
    pub fortnox_company_name: Option<String>,
    pub fortnox_organization_number: Option<String>,
    /// `YYYY-MM-DD`; orders dated before it are never imported.
    pub first_order_date: Option<String>,
    pub ignore_missing_products: bool,
    pub stock_location: Option<String>,
    /// High-water mark of Fortnox `lastmodified` seen by the order import.
    pub orders_synced_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    /// Credit a duplicate invoice in Fortnox automatically when one is detected.
    pub credit_duplicate_invoices: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
