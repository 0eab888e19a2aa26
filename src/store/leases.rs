//! One job at a time per order, across processes.
//!
//! Job tasks can be duplicated (a retryOrder while a task is waiting, two reconcilers, a
//! crash between queueing a retry and acknowledging the task). The state checks make most
//! duplicates harmless, but the invoice job's Fortnox calls happen before its state change,
//! so two of them at once could invoice twice. A job therefore takes the order's lease
//! (a conditional UPDATE, atomic on both databases) before any external effect, and gives
//! it back when done. A lease left by a crashed process runs out after its time.
use chrono::{DateTime, Utc};
use entity::order;
use sea_orm::prelude::*;
use sea_orm::ExprTrait;

use super::{Store, StoreError};

/// A lease held by one job; give it back with `Store::release`.
#[derive(Debug)]
pub struct Lease {
    pub order_id: i64,
    token: String,
}

/// Someone else holds the order until `until`.
#[derive(Debug)]
pub struct Held {
    pub until: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn claim(
        &self,
        order_id: i64,
        state: &str,
        ttl: chrono::Duration,
    ) -> Result<Result<Lease, Held>, StoreError> {
        let now = Utc::now();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let claimed = order::Entity::update_many()
            .col_expr(order::Column::LeaseUntil, Expr::value(Some(now + ttl)))
            .col_expr(order::Column::LeaseToken, Expr::value(Some(token.clone())))
            .filter(order::Column::Id.eq(order_id))
            .filter(order::Column::State.eq(state))
            .filter(
                order::Column::LeaseUntil
                    .is_null()
                    .or(order::Column::LeaseUntil.lt(now)),
            )
            .exec(&self.db)
            .await?;
        if claimed.rows_affected == 1 {
            return Ok(Ok(Lease { order_id, token }));
        }
        let until = order::Entity::find_by_id(order_id)
            .one(&self.db)
            .await?
            .and_then(|o| o.lease_until);
        Ok(Err(Held { until }))
    }

    pub async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        order::Entity::update_many()
            .col_expr(
                order::Column::LeaseUntil,
                Expr::value(Option::<DateTimeUtc>::None),
            )
            .col_expr(
                order::Column::LeaseToken,
                Expr::value(Option::<String>::None),
            )
            .filter(order::Column::Id.eq(lease.order_id))
            .filter(order::Column::LeaseToken.eq(lease.token))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
