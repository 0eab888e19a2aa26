//! Duplicate invoices: recorded once per (order, invoice), with their credit.
use chrono::Utc;
use entity::{duplicate_invoice, fortnox_integration};
use sea_orm::prelude::*;
use sea_orm::QueryOrder;

use super::write::{on_tx, EventKind};
use super::{Store, StoreError};

impl Store {
    /// Records that `invoice` duplicates the order's `kept` invoice, with an ERROR event
    /// naming both. Recording the same duplicate again changes nothing. Returns the record.
    pub async fn record_duplicate_invoice(
        &self,
        order_id: i64,
        invoice: &str,
        kept: &str,
        actor: &str,
        message: &str,
    ) -> Result<Option<duplicate_invoice::Model>, StoreError> {
        let mut tx = self.begin_tx().await?;
        let inserted: Option<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql("INSERT INTO duplicate_invoices \
                 (order_id, merchant_id, invoice_number, kept_invoice_number, detected_at) \
                 SELECT id, merchant_id, ?, ?, ? FROM orders WHERE id = ? \
                 ON CONFLICT (order_id, invoice_number) DO NOTHING RETURNING id"))
            .bind(invoice)
            .bind(kept)
            .bind(Utc::now())
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        if inserted.is_some() {
            tx.record_order_event(
                order_id,
                EventKind::Error,
                "duplicate_invoice",
                actor,
                message,
                false,
            )
            .await?;
        }
        tx.commit().await?;
        self.duplicate_invoice(order_id, invoice).await
    }

    pub async fn duplicate_invoice(
        &self,
        order_id: i64,
        invoice: &str,
    ) -> Result<Option<duplicate_invoice::Model>, StoreError> {
        Ok(duplicate_invoice::Entity::find()
            .filter(duplicate_invoice::Column::OrderId.eq(order_id))
            .filter(duplicate_invoice::Column::InvoiceNumber.eq(invoice))
            .one(&self.db)
            .await?)
    }

    /// The duplicates of several orders, oldest first (one query for a page of orders).
    pub async fn duplicate_invoices_of(
        &self,
        order_ids: &[i64],
    ) -> Result<Vec<duplicate_invoice::Model>, StoreError> {
        Ok(duplicate_invoice::Entity::find()
            .filter(duplicate_invoice::Column::OrderId.is_in(order_ids.iter().copied()))
            .order_by_asc(duplicate_invoice::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Whether the merchant wants duplicates credited automatically (the default).
    pub async fn credits_duplicate_invoices(&self, merchant_id: i64) -> Result<bool, StoreError> {
        Ok(fortnox_integration::Entity::find()
            .filter(fortnox_integration::Column::MerchantId.eq(merchant_id))
            .one(&self.db)
            .await?
            .is_none_or(|i| i.credit_duplicate_invoices))
    }

    /// The duplicate was credited by `credit_invoice`: recorded once, with an INFO event.
    pub async fn record_duplicate_credited(
        &self,
        duplicate_id: i64,
        credit_invoice: &str,
        actor: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let order_id: Option<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(
                "UPDATE duplicate_invoices SET credit_invoice_number = ?, credited_at = ?, \
                 credit_error = NULL WHERE id = ? AND credit_invoice_number IS NULL \
                 RETURNING order_id",
            ))
            .bind(credit_invoice)
            .bind(Utc::now())
            .bind(duplicate_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        if let Some(order_id) = order_id {
            tx.record_order_event(
                order_id,
                EventKind::Info,
                "duplicate_invoice_credited",
                actor,
                message,
                false,
            )
            .await?;
        }
        tx.commit().await
    }

    /// The duplicate was not credited automatically; `reason` says what a person must do.
    /// Recorded (with an ERROR event) once per distinct reason.
    pub async fn record_duplicate_not_credited(
        &self,
        duplicate_id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let order_id: Option<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(
                "UPDATE duplicate_invoices SET credit_error = ? \
                 WHERE id = ? AND (credit_error IS NULL OR credit_error <> ?) RETURNING order_id",
            ))
            .bind(reason)
            .bind(duplicate_id)
            .bind(reason)
            .fetch_optional(&mut *conn)
            .await?
        });
        if let Some(order_id) = order_id {
            tx.record_order_event(
                order_id,
                EventKind::Error,
                "duplicate_invoice_not_credited",
                actor,
                reason,
                false,
            )
            .await?;
        }
        tx.commit().await
    }
}
