use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The warehouse's carrier services. Codes are stable: shipping rules refer to them.
const SHIPPING_METHODS: &[(&str, &str, &str)] = &[
    (
        "DHL_EXPRESS_WORLDWIDE",
        "DHL Express",
        "DHL Express Worldwide",
    ),
    (
        "DHL_EXPRESS_DOMESTIC",
        "DHL Express",
        "DHL Express Domestic",
    ),
    ("DHL_PARCEL_CONNECT", "DHL Parcel", "DHL Parcel Connect"),
    ("DHL_SERVICE_POINT", "DHL Parcel", "DHL Service Point"),
    (
        "POSTNORD_MYPACK_COLLECT",
        "PostNord",
        "PostNord MyPack Collect",
    ),
    ("POSTNORD_MYPACK_HOME", "PostNord", "PostNord MyPack Home"),
    ("POSTNORD_VARUBREV", "PostNord", "PostNord Varubrev"),
    ("OMNIVA_PARCEL_MACHINE", "Omniva", "Omniva Parcel Machine"),
    (
        "OMNIVA_INTERNATIONAL",
        "Omniva",
        "Omniva International Maxiletter",
    ),
    ("GLS_BUSINESS_PARCEL", "GLS", "GLS BusinessParcel"),
    ("GLS_EUROBUSINESS_PARCEL", "GLS", "GLS EuroBusinessParcel"),
    ("POSTI_EXPRESS_PARCEL", "Posti", "Posti Express Parcel"),
    ("POSTI_POSTAL_PARCEL", "Posti", "Posti Postal Parcel"),
    ("BRING_PARCEL_HOME", "Bring", "Bring Home Delivery Parcel"),
    ("BRING_PICKUP_PARCEL", "Bring", "Bring PickUp Parcel"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Merchants::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Merchants::Id))
                    .col(string(Merchants::Name))
                    .col(timestamp_with_time_zone(Merchants::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FortnoxIntegrations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(FortnoxIntegrations::Id))
                    .col(big_integer_uniq(FortnoxIntegrations::MerchantId))
                    .col(string(FortnoxIntegrations::Status))
                    .col(text_null(FortnoxIntegrations::AccessTokenEncrypted))
                    .col(text_null(FortnoxIntegrations::RefreshTokenEncrypted))
                    .col(timestamp_with_time_zone_null(
                        FortnoxIntegrations::AccessTokenExpiresAt,
                    ))
                    .col(string_null(FortnoxIntegrations::TokenScope))
                    .col(string_null(FortnoxIntegrations::OauthState))
                    .col(timestamp_with_time_zone_null(
                        FortnoxIntegrations::OauthStateExpiresAt,
                    ))
                    .col(string_null(FortnoxIntegrations::FirstOrderDate))
                    .col(boolean(FortnoxIntegrations::IgnoreMissingProducts).default(false))
                    .col(string_null(FortnoxIntegrations::StockLocation))
                    .col(timestamp_with_time_zone_null(
                        FortnoxIntegrations::OrdersSyncedUntil,
                    ))
                    .col(text_null(FortnoxIntegrations::LastError))
                    .col(timestamp_with_time_zone(FortnoxIntegrations::CreatedAt))
                    .col(timestamp_with_time_zone(FortnoxIntegrations::UpdatedAt))
                    .foreign_key(&mut fk(
                        FortnoxIntegrations::Table,
                        FortnoxIntegrations::MerchantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Products::Id))
                    .col(big_integer(Products::MerchantId))
                    .col(string(Products::Sku))
                    .col(string(Products::Name))
                    .col(string_null(Products::Ean))
                    .col(big_integer_null(Products::WeightGrams))
                    .col(big_integer_null(Products::WidthMm))
                    .col(big_integer_null(Products::HeightMm))
                    .col(big_integer_null(Products::DepthMm))
                    .col(string_null(Products::Price))
                    .col(string_null(Products::StockQuantity))
                    .col(timestamp_with_time_zone(Products::CreatedAt))
                    .col(timestamp_with_time_zone(Products::UpdatedAt))
                    .foreign_key(&mut fk(Products::Table, Products::MerchantId))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "ux_products_merchant_sku",
            Products::Table,
            &[Products::MerchantId, Products::Sku],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(ShippingMethods::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ShippingMethods::Id))
                    .col(string_uniq(ShippingMethods::Code))
                    .col(string(ShippingMethods::Carrier))
                    .col(string(ShippingMethods::Name))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ShippingRules::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ShippingRules::Id))
                    .col(big_integer(ShippingRules::MerchantId))
                    .col(string(ShippingRules::Pattern))
                    .col(big_integer(ShippingRules::ShippingMethodId))
                    .col(timestamp_with_time_zone(ShippingRules::CreatedAt))
                    .foreign_key(&mut fk(ShippingRules::Table, ShippingRules::MerchantId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ShippingRules::Table, ShippingRules::ShippingMethodId)
                            .to(ShippingMethods::Table, ShippingMethods::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Orders::Id))
                    .col(big_integer(Orders::MerchantId))
                    .col(string(Orders::FortnoxDocumentNumber))
                    .col(string(Orders::State))
                    .col(json_binary(Orders::Reasons))
                    .col(json_binary_null(Orders::DeliveryAddress))
                    .col(string_null(Orders::WayOfDelivery))
                    .col(big_integer_null(Orders::ShippingMethodId))
                    .col(string_null(Orders::WarehouseReference))
                    .col(json_binary(Orders::TrackingNumbers))
                    .col(string_null(Orders::InvoiceNumber))
                    .col(json_binary(Orders::FortnoxSnapshot))
                    .col(timestamp_with_time_zone_null(Orders::InvoiceRequestedAt))
                    .col(timestamp_with_time_zone_null(Orders::StalledAt))
                    .col(timestamp_with_time_zone_null(Orders::LeaseUntil))
                    .col(string_null(Orders::LeaseToken))
                    .col(text_null(Orders::LastError))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .foreign_key(&mut fk(Orders::Table, Orders::MerchantId))
                    .to_owned(),
            )
            .await?;
        unique_index(
            manager,
            "ux_orders_merchant_document",
            Orders::Table,
            &[Orders::MerchantId, Orders::FortnoxDocumentNumber],
        )
        .await?;
        index(
            manager,
            "ix_orders_state",
            Orders::Table,
            &[Orders::State, Orders::UpdatedAt],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderLines::Table)
                    .if_not_exists()
                    .col(big_pk_auto(OrderLines::Id))
                    .col(big_integer(OrderLines::OrderId))
                    .col(integer(OrderLines::Position))
                    .col(big_integer_null(OrderLines::FortnoxRowId))
                    .col(string_null(OrderLines::ArticleNumber))
                    .col(string(OrderLines::Description))
                    .col(string(OrderLines::OrderedQuantity))
                    .col(string_null(OrderLines::PickQuantity))
                    .col(string_null(OrderLines::ShippedQuantity))
                    .col(timestamp_with_time_zone(OrderLines::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrderLines::Table, OrderLines::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_order_lines_order",
            OrderLines::Table,
            &[OrderLines::OrderId],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(OrderEvents::Id))
                    .col(big_integer(OrderEvents::OrderId))
                    .col(big_integer(OrderEvents::MerchantId))
                    .col(string(OrderEvents::Kind))
                    .col(string_null(OrderEvents::FromState))
                    .col(string_null(OrderEvents::ToState))
                    .col(string(OrderEvents::Cause))
                    .col(string(OrderEvents::Actor))
                    .col(text_null(OrderEvents::Message))
                    .col(boolean(OrderEvents::Forced).default(false))
                    .col(timestamp_with_time_zone(OrderEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrderEvents::Table, OrderEvents::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_order_events_order",
            OrderEvents::Table,
            &[OrderEvents::OrderId, OrderEvents::Id],
        )
        .await?;

        let mut seed = Query::insert()
            .into_table(ShippingMethods::Table)
            .columns([
                ShippingMethods::Code,
                ShippingMethods::Carrier,
                ShippingMethods::Name,
            ])
            .to_owned();
        for (code, carrier, name) in SHIPPING_METHODS {
            seed.values_panic([(*code).into(), (*carrier).into(), (*name).into()]);
        }
        manager.exec_stmt(seed).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrderEvents::Table.into_iden(),
            OrderLines::Table.into_iden(),
            Orders::Table.into_iden(),
            ShippingRules::Table.into_iden(),
            ShippingMethods::Table.into_iden(),
            Products::Table.into_iden(),
            FortnoxIntegrations::Table.into_iden(),
            Merchants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

fn fk<T: IntoIden + Copy + 'static, C: IntoIden + 'static>(
    table: T,
    column: C,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Merchants::Table, Merchants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

async fn unique_index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut stmt = Index::create()
        .name(name)
        .table(table)
        .unique()
        .if_not_exists()
        .to_owned();
    for column in columns {
        stmt.col(*column);
    }
    manager.create_index(stmt).await
}

async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: &[C],
) -> Result<(), DbErr> {
    let mut stmt = Index::create()
        .name(name)
        .table(table)
        .if_not_exists()
        .to_owned();
    for column in columns {
        stmt.col(*column);
    }
    manager.create_index(stmt).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Merchants {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum FortnoxIntegrations {
    Table,
    Id,
    MerchantId,
    Status,
    AccessTokenEncrypted,
    RefreshTokenEncrypted,
    AccessTokenExpiresAt,
    TokenScope,
    OauthState,
    OauthStateExpiresAt,
    FirstOrderDate,
    IgnoreMissingProducts,
    StockLocation,
    OrdersSyncedUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    Id,
    MerchantId,
    Sku,
    Name,
    Ean,
    WeightGrams,
    WidthMm,
    HeightMm,
    DepthMm,
    Price,
    StockQuantity,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ShippingMethods {
    Table,
    Id,
    Code,
    Carrier,
    Name,
}

#[derive(DeriveIden, Clone, Copy)]
enum ShippingRules {
    Table,
    Id,
    MerchantId,
    Pattern,
    ShippingMethodId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    MerchantId,
    FortnoxDocumentNumber,
    State,
    Reasons,
    DeliveryAddress,
    WayOfDelivery,
    ShippingMethodId,
    WarehouseReference,
    TrackingNumbers,
    InvoiceNumber,
    FortnoxSnapshot,
    InvoiceRequestedAt,
    StalledAt,
    LeaseUntil,
    LeaseToken,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderLines {
    Table,
    Id,
    OrderId,
    Position,
    FortnoxRowId,
    ArticleNumber,
    Description,
    OrderedQuantity,
    PickQuantity,
    ShippedQuantity,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderEvents {
    Table,
    Id,
    OrderId,
    MerchantId,
    Kind,
    FromState,
    ToState,
    Cause,
    Actor,
    Message,
    Forced,
    CreatedAt,
}
