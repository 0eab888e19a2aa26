use sea_orm::entity::prelude::*;

/// Append-only history of an order, and the log partners follow: read in
/// (`tx_position`, `id`) order (see the migration `m20261129_000003_event_log`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: i64,
    pub merchant_id: i64,
    pub kind: crate::EventKind,
    pub from_state: Option<crate::OrderState>,
    pub to_state: Option<crate::OrderState>,
    pub cause: String,
    pub actor: String,
    pub message: Option<String>,
    pub forced: bool,
    pub created_at: DateTimeUtc,
    /// The writing transaction's id on PostgreSQL; 0 on SQLite (one writer at a time).
    pub tx_position: i64,
    pub payload: Option<crate::EventPayload>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
