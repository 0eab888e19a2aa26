//! A version of each merchant's catalogue (products, shipping rules, the choice to ignore
//! missing products), bumped in the same transaction as every change to it.
//!
//! An order's checks note the version before they read the catalogue. When they reserve
//! the order, the transition compares it with the version then (on PostgreSQL under a
//! share lock of the merchant's row, which the bump's update waits for): if the catalogue
//! changed while the checks ran, the order is checked again at once. Without it, a change
//! committed during the checks re-checked only the orders already RESERVED, not this one,
//! and it stayed RESERVED with reasons that no longer held.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Merchants::Table)
                    .add_column(big_integer(Merchants::CatalogVersion).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Merchants::Table)
                    .drop_column(Merchants::CatalogVersion)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Merchants {
    Table,
    CatalogVersion,
}
