use sea_orm::entity::prelude::*;

/// A Fortnox order the import could not read or store (an undecodable answer, a refused
/// request). It is retried at every poll until it imports or no longer qualifies; the
/// merchant's other orders are imported meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "import_failures")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub merchant_id: i64,
    pub document_number: String,
    /// The last failure, in words that name what went wrong.
    pub reason: String,
    pub attempts: i32,
    pub first_failed_at: DateTimeUtc,
    pub last_failed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
