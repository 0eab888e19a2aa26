//! A page of orders decoded by column position, straight from the driver's row.
//!
//! sea-orm's derived decoding of [`OrderSummary`] formats each column's name for every row
//! to look it up, builds an error text for every NULL it meets before turning it into
//! `None`, and reads the JSON columns through `serde_json::Value`: about a tenth of the
//! server's time for a page of 50 orders. The query is still sea-orm's (the columns are
//! [`OrderSummary`]'s, in its field order); only the decoding is done here.
use entity::{StoredAddress, TextList};
use sea_orm::{ActiveEnum, DbErr, FromQueryResult, PartialModelTrait, QueryResult, QuerySelect};
use sqlx::types::Json;

use super::orders::OrderSummary;
use crate::domain::OrderState;

/// One row of [`super::Store::orders_page`].
pub(super) struct PageRow(pub OrderSummary);

/// Reads the columns of [`OrderSummary`] by position from a sqlx row of either database.
macro_rules! summary_from_row {
    ($row:expr) => {{
        use sqlx::Row;
        let row = $row;
        let state: String = row.try_get(3).map_err(decode_error)?;
        OrderSummary {
            id: row.try_get(0).map_err(decode_error)?,
            merchant_id: row.try_get(1).map_err(decode_error)?,
            fortnox_document_number: row.try_get(2).map_err(decode_error)?,
            state: OrderState::try_from_value(&state)?,
            reasons: row.try_get::<Json<TextList>, _>(4).map_err(decode_error)?.0,
            delivery_address: row
                .try_get::<Option<Json<StoredAddress>>, _>(5)
                .map_err(decode_error)?
                .map(|address| address.0),
            way_of_delivery: row.try_get(6).map_err(decode_error)?,
            shipping_method_id: row.try_get(7).map_err(decode_error)?,
            warehouse_reference: row.try_get(8).map_err(decode_error)?,
            tracking_numbers: row.try_get::<Json<TextList>, _>(9).map_err(decode_error)?.0,
            invoice_number: row.try_get(10).map_err(decode_error)?,
            stalled_at: row.try_get(11).map_err(decode_error)?,
            last_error: row.try_get(12).map_err(decode_error)?,
            created_at: row.try_get(13).map_err(decode_error)?,
            updated_at: row.try_get(14).map_err(decode_error)?,
        }
    }};
}

/// sqlx names the column and what it could not read.
fn decode_error(error: sqlx::Error) -> DbErr {
    DbErr::Type(format!("reading a stored order for a list: {error}"))
}

impl FromQueryResult for PageRow {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        if !pre.is_empty() {
            // Positions hold only for the page query's own columns.
            return OrderSummary::from_query_result(res, pre).map(PageRow);
        }
        if let Some(row) = res.try_as_sqlite_row() {
            return Ok(PageRow(summary_from_row!(row)));
        }
        if let Some(row) = res.try_as_pg_row() {
            return Ok(PageRow(summary_from_row!(row)));
        }
        OrderSummary::from_query_result(res, pre).map(PageRow)
    }
}

impl PartialModelTrait for PageRow {
    fn select_cols_nested<S: QuerySelect>(
        select: S,
        prefix: Option<&str>,
        alias: Option<&'static str>,
    ) -> S {
        OrderSummary::select_cols_nested(select, prefix, alias)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use entity::order;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
    use serde_json::json;

    use crate::store::orders::{NewOrder, OrderFilter, OrderSummary, TenantScope};
    use crate::store::temp_sqlite_store;

    fn new_order(merchant_id: i64, number: &str, address: Option<serde_json::Value>) -> NewOrder {
        NewOrder {
            merchant_id,
            fortnox_document_number: number.into(),
            way_of_delivery: address.as_ref().map(|_| "DHL".into()),
            delivery_address: address,
            fortnox_snapshot: json!({}),
            lines: vec![],
        }
    }

    /// Every column lands in its field: one order with every optional column set (each to
    /// a value no other column holds), one with them all empty.
    #[tokio::test]
    async fn a_page_reads_each_column_into_its_field_as_the_model_does() {
        let (_dir, store, _pool) = temp_sqlite_store(1).await;
        let merchant = store.create_merchant("Page").await.expect("merchant").id;
        let address = json!({
            "name": "Anna", "street": "Storgatan 1", "street2": "c/o B", "zip_code": "111 22",
            "city": "Stockholm", "country": "Sverige", "country_code": "SE"
        });
        let full = store
            .insert_order(new_order(merchant, "101", Some(address)))
            .await
            .expect("insert")
            .expect("new");
        store
            .insert_order(new_order(merchant, "102", None))
            .await
            .expect("insert")
            .expect("new");
        let method = store
            .shipping_methods()
            .await
            .expect("methods")
            .first()
            .map(|m| m.id);
        let stalled = Utc
            .with_ymd_and_hms(2026, 11, 30, 1, 2, 3)
            .single()
            .expect("a time");
        order::ActiveModel {
            id: Set(full.id),
            reasons: Set(entity::TextList(vec!["no price".into(), "no zip".into()])),
            shipping_method_id: Set(method),
            warehouse_reference: Set(Some("WH-9".into())),
            tracking_numbers: Set(entity::TextList(vec!["TRACK-1".into()])),
            invoice_number: Set(Some("INV-7".into())),
            stalled_at: Set(Some(stalled)),
            last_error: Set(Some("timed out".into())),
            ..Default::default()
        }
        .update(&store.db)
        .await
        .expect("update");

        let page = store
            .orders_page(&TenantScope::All, &OrderFilter::default(), None, 10)
            .await
            .expect("page");
        let models = order::Entity::find().all(&store.db).await.expect("models");
        let mut expected: Vec<OrderSummary> = models.into_iter().map(OrderSummary::from).collect();
        expected.sort_by_key(|o| std::cmp::Reverse(o.id));
        assert_eq!(page, expected);
        assert_eq!(page.len(), 2);
        assert!(page
            .iter()
            .any(|o| o.delivery_address.is_some() && o.stalled_at.is_some()));
        assert!(page
            .iter()
            .any(|o| o.delivery_address.is_none() && o.stalled_at.is_none()));
    }
}
