//! Hardening the edges: Fortnox orders that could not be imported (retried at every poll,
//! never holding back the others), and who started a Fortnox connection and which
//! Fortnox company it connected.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImportFailures::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ImportFailures::Id))
                    .col(big_integer(ImportFailures::MerchantId))
                    .col(string(ImportFailures::DocumentNumber))
                    .col(text(ImportFailures::Reason))
                    .col(integer(ImportFailures::Attempts))
                    .col(timestamp_with_time_zone(ImportFailures::FirstFailedAt))
                    .col(timestamp_with_time_zone(ImportFailures::LastFailedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_import_failures_merchant_document")
                    .table(ImportFailures::Table)
                    .col(ImportFailures::MerchantId)
                    .col(ImportFailures::DocumentNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            FortnoxIntegrations::OauthStartedBy,
            FortnoxIntegrations::FortnoxTenantId,
            FortnoxIntegrations::FortnoxCompanyName,
            FortnoxIntegrations::FortnoxOrganizationNumber,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(FortnoxIntegrations::Table)
                        .add_column(string_null(column))
                        .to_owned(),
                )
                .await?;
        }
        // One Fortnox company feeds one merchant: NULLs (not connected) do not collide.
        manager
            .create_index(
                Index::create()
                    .name("ux_fortnox_integrations_tenant")
                    .table(FortnoxIntegrations::Table)
                    .col(FortnoxIntegrations::FortnoxTenantId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_fortnox_integrations_tenant")
                    .table(FortnoxIntegrations::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            FortnoxIntegrations::FortnoxOrganizationNumber,
            FortnoxIntegrations::FortnoxCompanyName,
            FortnoxIntegrations::FortnoxTenantId,
            FortnoxIntegrations::OauthStartedBy,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(FortnoxIntegrations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ImportFailures::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum FortnoxIntegrations {
    Table,
    OauthStartedBy,
    FortnoxTenantId,
    FortnoxCompanyName,
    FortnoxOrganizationNumber,
}

#[derive(DeriveIden)]
enum ImportFailures {
    Table,
    Id,
    MerchantId,
    DocumentNumber,
    Reason,
    Attempts,
    FirstFailedAt,
    LastFailedAt,
}
