//! Duplicate invoices: recorded once per (order, invoice), with their credit.
use chrono::Utc;
use entity::{duplicate_invoice, fortnox_integration, order, order_event};
use sea_orm::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::ActiveValue::Set;
use sea_orm::QueryOrder;

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
        let txn = self.begin_write().await?;
        let Some(order) = order::Entity::find_by_id(order_id).one(&txn).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        let inserted = duplicate_invoice::Entity::insert(duplicate_invoice::ActiveModel {
            order_id: Set(order.id),
            merchant_id: Set(order.merchant_id),
            invoice_number: Set(invoice.to_owned()),
            kept_invoice_number: Set(kept.to_owned()),
            credit_invoice_number: Set(None),
            credit_error: Set(None),
            detected_at: Set(now),
            credited_at: Set(None),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([
                duplicate_invoice::Column::OrderId,
                duplicate_invoice::Column::InvoiceNumber,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        if inserted == 1 {
            insert_event(&txn, &order, "ERROR", "duplicate_invoice", actor, message).await?;
            let mut active: order::ActiveModel = order.into();
            active.last_error = Set(Some(message.to_owned()));
            active.updated_at = Set(now);
            active.update(&txn).await?;
        }
        txn.commit().await?;
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
        let txn = self.begin_write().await?;
        let now = Utc::now();
        let updated = duplicate_invoice::Entity::update_many()
            .col_expr(
                duplicate_invoice::Column::CreditInvoiceNumber,
                Expr::value(Some(credit_invoice.to_owned())),
            )
            .col_expr(
                duplicate_invoice::Column::CreditedAt,
                Expr::value(Some(now)),
            )
            .col_expr(
                duplicate_invoice::Column::CreditError,
                Expr::value(Option::<String>::None),
            )
            .filter(duplicate_invoice::Column::Id.eq(duplicate_id))
            .filter(duplicate_invoice::Column::CreditInvoiceNumber.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 1 {
            if let Some(duplicate) = duplicate_invoice::Entity::find_by_id(duplicate_id)
                .one(&txn)
                .await?
            {
                if let Some(order) = order::Entity::find_by_id(duplicate.order_id)
                    .one(&txn)
                    .await?
                {
                    insert_event(
                        &txn,
                        &order,
                        "INFO",
                        "duplicate_invoice_credited",
                        actor,
                        message,
                    )
                    .await?;
                }
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// The duplicate was not credited automatically; `reason` says what a person must do.
    pub async fn record_duplicate_not_credited(
        &self,
        duplicate_id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let Some(duplicate) = duplicate_invoice::Entity::find_by_id(duplicate_id)
            .one(&txn)
            .await?
        else {
            return Ok(());
        };
        if duplicate.credit_error.as_deref() == Some(reason) {
            return Ok(());
        }
        if let Some(order) = order::Entity::find_by_id(duplicate.order_id)
            .one(&txn)
            .await?
        {
            insert_event(
                &txn,
                &order,
                "ERROR",
                "duplicate_invoice_not_credited",
                actor,
                reason,
            )
            .await?;
        }
        let mut active: duplicate_invoice::ActiveModel = duplicate.into();
        active.credit_error = Set(Some(reason.to_owned()));
        active.update(&txn).await?;
        txn.commit().await?;
        Ok(())
    }
}

async fn insert_event(
    txn: &sea_orm::DatabaseTransaction,
    order: &order::Model,
    kind: &str,
    cause: &str,
    actor: &str,
    message: &str,
) -> Result<(), StoreError> {
    order_event::ActiveModel {
        order_id: Set(order.id),
        merchant_id: Set(order.merchant_id),
        kind: Set(kind.to_owned()),
        from_state: Set(Some(order.state.clone())),
        to_state: Set(Some(order.state.clone())),
        cause: Set(cause.to_owned()),
        actor: Set(actor.to_owned()),
        message: Set(Some(message.to_owned())),
        forced: Set(false),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}
