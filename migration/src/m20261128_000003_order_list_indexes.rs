//! Indexes for the order lists the API serves (newest first, by id): by state (the
//! warehouse's SENT orders), by merchant, and by both. Without them the database sorts
//! every matching order to return one page.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &[Orders]); 3] = [
    ("ix_orders_state_id", &[Orders::State, Orders::Id]),
    ("ix_orders_merchant_id", &[Orders::MerchantId, Orders::Id]),
    (
        "ix_orders_merchant_state_id",
        &[Orders::MerchantId, Orders::State, Orders::Id],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns) in INDEXES {
            let mut index = Index::create()
                .name(name)
                .table(Orders::Table)
                .if_not_exists()
                .to_owned();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Orders::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    MerchantId,
    State,
}
