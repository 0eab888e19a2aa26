//! Fortnox orders the import could not read or store, kept so that they are retried at
//! every poll and shown to the merchant, while the other orders go on.
use chrono::Utc;
use entity::import_failure as failure;
use sea_orm::prelude::*;
use sea_orm::sea_query::{ExprTrait, OnConflict};
use sea_orm::ActiveValue::Set;
use sea_orm::QueryOrder;

use super::{Store, StoreError};

impl Store {
    /// Records (or updates) why an order could not be imported.
    pub async fn record_import_failure(
        &self,
        merchant_id: i64,
        document_number: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let row = failure::ActiveModel {
            merchant_id: Set(merchant_id),
            document_number: Set(document_number.to_owned()),
            reason: Set(reason.to_owned()),
            attempts: Set(1),
            first_failed_at: Set(now),
            last_failed_at: Set(now),
            ..Default::default()
        };
        failure::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([failure::Column::MerchantId, failure::Column::DocumentNumber])
                    .update_columns([failure::Column::Reason, failure::Column::LastFailedAt])
                    .value(
                        failure::Column::Attempts,
                        Expr::col((failure::Entity, failure::Column::Attempts)).add(1),
                    )
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The order imported, or no longer qualifies: nothing to retry.
    pub async fn clear_import_failure(
        &self,
        merchant_id: i64,
        document_number: &str,
    ) -> Result<(), StoreError> {
        failure::Entity::delete_many()
            .filter(failure::Column::MerchantId.eq(merchant_id))
            .filter(failure::Column::DocumentNumber.eq(document_number))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The merchant's failed orders, the least recently tried first.
    pub async fn import_failures(
        &self,
        merchant_id: i64,
    ) -> Result<Vec<failure::Model>, StoreError> {
        Ok(failure::Entity::find()
            .filter(failure::Column::MerchantId.eq(merchant_id))
            .order_by_asc(failure::Column::LastFailedAt)
            .order_by_asc(failure::Column::Id)
            .all(&self.db)
            .await?)
    }
}
