//! Exactly one invoice per order even when a job outlives its lease: who recorded the
//! invoice intent, the merchant's choice to credit duplicates, and the duplicates found.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .add_column(string_null(Orders::InvoiceIntentToken))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(FortnoxIntegrations::Table)
                    .add_column(boolean(FortnoxIntegrations::CreditDuplicateInvoices).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DuplicateInvoices::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DuplicateInvoices::Id))
                    .col(big_integer(DuplicateInvoices::OrderId))
                    .col(big_integer(DuplicateInvoices::MerchantId))
                    .col(string(DuplicateInvoices::InvoiceNumber))
                    .col(string(DuplicateInvoices::KeptInvoiceNumber))
                    .col(string_null(DuplicateInvoices::CreditInvoiceNumber))
                    .col(text_null(DuplicateInvoices::CreditError))
                    .col(timestamp_with_time_zone(DuplicateInvoices::DetectedAt))
                    .col(timestamp_with_time_zone_null(DuplicateInvoices::CreditedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DuplicateInvoices::Table, DuplicateInvoices::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_duplicate_invoices_order_invoice")
                    .table(DuplicateInvoices::Table)
                    .col(DuplicateInvoices::OrderId)
                    .col(DuplicateInvoices::InvoiceNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DuplicateInvoices::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(FortnoxIntegrations::Table)
                    .drop_column(FortnoxIntegrations::CreditDuplicateInvoices)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orders::Table)
                    .drop_column(Orders::InvoiceIntentToken)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    InvoiceIntentToken,
}

#[derive(DeriveIden)]
enum FortnoxIntegrations {
    Table,
    CreditDuplicateInvoices,
}

#[derive(DeriveIden)]
enum DuplicateInvoices {
    Table,
    Id,
    OrderId,
    MerchantId,
    InvoiceNumber,
    KeptInvoiceNumber,
    CreditInvoiceNumber,
    CreditError,
    DetectedAt,
    CreditedAt,
}
