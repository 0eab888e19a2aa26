use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_lines")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: i64,
    pub position: i32,
    /// Fortnox `RowId` as last read; Fortnox renumbers rows after every update.
    pub fortnox_row_id: Option<i64>,
    pub article_number: Option<String>,
    pub description: String,
    /// Decimal quantities as text: exact, never floats.
    pub ordered_quantity: String,
    /// What the warehouse is asked to pick; `None` for rows not shipped (no article,
    /// non-stock article, or a missing product with ignoreMissingProducts on).
    pub pick_quantity: Option<String>,
    pub shipped_quantity: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
