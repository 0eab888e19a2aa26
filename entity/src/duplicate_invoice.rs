use sea_orm::entity::prelude::*;

/// A second Fortnox invoice found for an order that already had one (a job that outlived
/// its lease, or a request a frozen process had in flight), and its credit.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "duplicate_invoices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: i64,
    pub merchant_id: i64,
    /// The duplicate.
    pub invoice_number: String,
    /// The order's invoice, which stays.
    pub kept_invoice_number: String,
    /// The Fortnox credit invoice that cancels the duplicate, once credited.
    pub credit_invoice_number: Option<String>,
    /// Why the automatic credit did not happen (off for the merchant, or refused).
    pub credit_error: Option<String>,
    pub detected_at: DateTimeUtc,
    pub credited_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
