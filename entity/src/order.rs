use sea_orm::entity::prelude::*;

/// An order imported from Fortnox. `state` is written only by the transition function
/// (`store::transitions`), never by ordinary updates.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub merchant_id: i64,
    pub fortnox_document_number: String,
    pub state: crate::OrderState,
    /// Human-readable reasons why the order is RESERVED (a JSON array).
    pub reasons: crate::TextList,
    /// Set by validation (a JSON object).
    pub delivery_address: Option<crate::StoredAddress>,
    pub way_of_delivery: Option<String>,
    pub shipping_method_id: Option<i64>,
    pub warehouse_reference: Option<String>,
    /// The warehouse's tracking numbers (a JSON array).
    pub tracking_numbers: crate::TextList,
    pub invoice_number: Option<String>,
    /// The Fortnox order as it was read, kept for audits and re-checks. Kept verbatim as
    /// JSON, fields we do not model included; `jobs::fortnox_glue` decodes it into the
    /// Fortnox client's typed order where it is used.
    pub fortnox_snapshot: Json,
    /// Set just before `createinvoice` is sent: a later attempt then reads the Fortnox
    /// order first and adopts an invoice that already exists.
    pub invoice_requested_at: Option<DateTimeUtc>,
    /// The lease token of the job that recorded the intent: a job holding another token
    /// reads the Fortnox order fresh before deciding anything.
    pub invoice_intent_token: Option<String>,
    /// Set when a job for the current state gave up after its last attempt; cleared by a
    /// retry or the next transition. The reconciler leaves stalled orders alone.
    pub stalled_at: Option<DateTimeUtc>,
    /// While set and in the future, one job holds the order (see `store::leases`).
    pub lease_until: Option<DateTimeUtc>,
    pub lease_token: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
